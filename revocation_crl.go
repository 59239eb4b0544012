package mtls

import (
	"bytes"
	"context"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"errors"
	"fmt"
	"math/big"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/certgate/mtls/internal/certfile"
	"github.com/certgate/mtls/internal/crl"
	"github.com/certgate/mtls/internal/redact"
)

// crlChecker answers from CRLs: the configured ones, indexed by issuer name, and those of the
// certificates' distribution points.
type crlChecker struct {
	rv         *revocation
	maxBytes   int64 // configured sources
	dpMaxBytes int64 // distribution points
	timeout    time.Duration
	interval   time.Duration
	useDP      bool

	configured []*crlSource
	unloaded   atomic.Int32                            // configured sources never loaded
	byIssuer   atomic.Pointer[map[string][]*crlSource] // issuer Name DER -> configured sources
	indexMu    sync.Mutex                              // serialises rebuilds of byIssuer

	dpMu sync.RWMutex
	dp   map[string]*crlSource
}

// crlSource is one file or URL and the last good CRL read from it.
type crlSource struct {
	ck         *crlChecker
	path, url  string
	configured bool
	host       string // a distribution point's URL host, lower case, for maxDPDownloadsPerHost

	cur         atomic.Pointer[crlSnap]
	loading     atomic.Pointer[crlLoad] // the download under way, nil when none is
	failedUntil atomic.Int64            // unix nanoseconds; 0 when the last download succeeded
	failures    atomic.Int32            // downloads failed in a row, for a distribution point's back-off
	lastUsed    atomic.Int64            // unix nanoseconds, to the second: distribution points only
	mu          sync.Mutex
	lastErr     error

	// swapMu serialises the acceptance and swap of fetched CRLs (never held across a fetch);
	// marks, under it, remembers per issuer name and key the newest verified CRL this source
	// has served, so that serving another issuer's CRL in between does not reopen the door to a
	// replay, and a CA re-keyed under the same name starts afresh. Keyed by the issuer Name DER
	// followed by the signer's SubjectPublicKeyInfo DER.
	swapMu sync.Mutex
	marks  map[string]*crlMark
}

// crlMark is the newest verified CRL of one issuer key seen at a source.
type crlMark struct {
	thisUpdate time.Time
	number     *big.Int
	signer     *x509.Certificate // a certificate of the key, which verified the CRL
	// trusted: signer came from a chain verified under the trust in force, so a CRL it
	// verifies may replace the CRL in force even when no chain led to the download.
	trusted bool
}

// maxCRLMarks bounds the issuer keys remembered per source.
const maxCRLMarks = 16

// crlSnap is a CRL in force and when to fetch it again.
type crlSnap struct {
	crl       *loadedCRL
	refreshAt time.Time
	fetchedAt time.Time
}

// crlLoad is one download of a source, which requests may wait for.
type crlLoad struct {
	started time.Time
	done    chan struct{} // closed when the CRL is swapped in or the download failed

	// A distribution point's first download is cut short at a soft deadline, which requests
	// that wait for it push back (see extend), up to the fetch timeout: a download that nobody
	// waits for holds its slot for the revocation timeout only.
	mu    sync.Mutex
	soft  time.Time   // when timer fires
	timer *time.Timer // nil: no soft deadline
}

// extend pushes the soft deadline of the download back to d from now, if that is later.
func (l *crlLoad) extend(d time.Duration) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.timer == nil {
		return
	}
	if t := time.Now().Add(d); t.After(l.soft) {
		l.soft = t
		l.timer.Reset(d)
	}
}

// loadedCRL is a scanned CRL and what checking its signature taught. Which issuer verified it
// depends on the trust in force (see crlSource.trustChanged), so it is kept here rather than by
// the scanner. The signature cannot always be checked at load time (the issuer is known only
// from a verified chain): it is checked against the issuer of the chain that led to the
// download when there is one (see crlSource.acceptable), or else of the first chain that
// consults the CRL; a CRL whose signature does not verify with that issuer's key says nothing
// about that issuer's certificates.
type loadedCRL struct {
	*crl.CRL

	verified atomic.Pointer[x509.Certificate] // the issuer whose key verified the signature
	failMu   sync.Mutex
	failed   [][]byte // SPKIs that did not verify it (a few, to avoid repeating the work)
}

// verifyWith checks that issuer signed the CRL: same name, a key allowed to sign CRLs, a matching
// key identifier and a valid signature. The outcome is remembered.
func (c *loadedCRL) verifyWith(issuer *x509.Certificate) error {
	if v := c.verified.Load(); v != nil {
		if v == issuer || bytes.Equal(v.RawSubjectPublicKeyInfo, issuer.RawSubjectPublicKeyInfo) &&
			bytes.Equal(v.RawSubject, issuer.RawSubject) {
			return nil
		}
		// One CRL has one signer: another key cannot have signed it too.
		return errors.New("mtls: CRL was signed by another CA with the same name")
	}
	if !bytes.Equal(c.Issuer, issuer.RawSubject) {
		return errors.New("mtls: CRL issuer name differs from the certificate's issuer")
	}
	c.failMu.Lock()
	for _, spki := range c.failed {
		if bytes.Equal(spki, issuer.RawSubjectPublicKeyInfo) {
			c.failMu.Unlock()
			return errors.New("mtls: CRL signature does not verify with the issuer's key")
		}
	}
	c.failMu.Unlock()
	err := c.checkSigner(issuer)
	if err != nil {
		c.failMu.Lock()
		if len(c.failed) < 8 {
			c.failed = append(c.failed, issuer.RawSubjectPublicKeyInfo)
		}
		c.failMu.Unlock()
		return err
	}
	c.verified.Store(issuer)
	return nil
}

// checkSigner is crl.CRL.CheckSigner, without remembering the outcome.
func (c *loadedCRL) checkSigner(issuer *x509.Certificate) error {
	if err := c.CheckSigner(issuer); err != nil {
		return fmt.Errorf("mtls: %w", err)
	}
	return nil
}

// startDownloads downloads the configured URLs at once, in the background: requests wait for
// them only as long as the revocation timeout allows, and only when no CRL of their issuer is
// known yet.
func (ck *crlChecker) startDownloads() {
	for _, src := range ck.configured {
		if src.url != "" {
			src.start(ck.rv.now(), false, nil)
		}
	}
}

// name is the file path, or the URL as reportedURL shows it.
func (s *crlSource) name() string {
	if s.path != "" {
		return s.path
	}
	return reportedURL(s.url)
}

// status answers for c, issued by issuer, from every CRL that speaks for it. Unless load is set,
// it uses only the CRLs already loaded: it neither waits for a download nor adds a distribution
// point (refreshes due still start in the background).
func (ck *crlChecker) status(ctx context.Context, c, issuer *x509.Certificate, now time.Time, load bool, until time.Time) answer {
	srcs := (*ck.byIssuer.Load())[string(c.RawIssuer)]
	if ck.unloaded.Load() > 0 && ck.awaitUnloaded(ctx, now, load && len(srcs) == 0, until) {
		srcs = (*ck.byIssuer.Load())[string(c.RawIssuer)]
	}
	var a answer
	for _, src := range srcs {
		a = merge(a, src.answer(ctx, c, issuer, now, load, until))
	}
	if ck.useDP {
		a = ck.dpAnswer(ctx, a, c, issuer, now, load, until)
	}
	if a.state == stateNone && load {
		a.err = fmt.Errorf("mtls: CRL: no CRL of %q covers the certificate", clip(issuer.Subject.String()))
	}
	return a
}

// awaitUnloaded handles the configured URLs never loaded, whose issuers are unknown: it retries
// the failed ones in the background and, with wait (no CRL of the certificate's issuer is
// known), waits for the first downloads still under way (bounded by the revocation timeout from
// their start), one of which may be this issuer's; it says whether it waited. A URL that failed
// is never waited for.
func (ck *crlChecker) awaitUnloaded(ctx context.Context, now time.Time, wait bool, until time.Time) bool {
	for _, src := range ck.configured {
		if src.cur.Load() != nil {
			continue
		}
		if src.failedUntil.Load() != 0 {
			src.fetchInBackground(now, nil)
		} else if wait {
			ck.rv.await(ctx, src.loading.Load(), until)
		}
	}
	return wait
}

// dpAnswer merges into a the answers of the CRLs of c's distribution points (HTTP ones, at most
// maxDPPerCertificate), adding the points unless load is unset.
func (ck *crlChecker) dpAnswer(ctx context.Context, a answer, c, issuer *x509.Certificate, now time.Time, load bool, until time.Time) answer {
	used := 0
	for _, u := range c.CRLDistributionPoints {
		if !redact.IsHTTP(u) {
			continue
		}
		if used++; used > maxDPPerCertificate {
			break // a certificate cannot make the service download without bound
		}
		src := ck.dpSource(u, now, load)
		if src == nil {
			if load {
				a = merge(a, answer{state: stateUnknown, err: errors.New("mtls: CRL: too many distribution points")})
			}
			continue
		}
		a = merge(a, src.answer(ctx, c, issuer, now, load, until))
	}
	return a
}

// dpSource returns the source of a distribution point URL, creating it if create is set and
// there is room. When the table is full, the point least recently used makes room if nobody used
// it for a refresh interval (at least a minute): points that are no longer met do not lock new
// ones out.
func (ck *crlChecker) dpSource(u string, now time.Time, create bool) *crlSource {
	ck.dpMu.RLock()
	src := ck.dp[u]
	ck.dpMu.RUnlock()
	if src != nil {
		if n := now.UnixNano(); n-src.lastUsed.Load() > int64(time.Second) {
			src.lastUsed.Store(n)
		}
		return src
	}
	if !create {
		return nil
	}
	ck.dpMu.Lock()
	defer ck.dpMu.Unlock()
	if src = ck.dp[u]; src != nil {
		return src
	}
	if len(ck.dp) >= maxDPSources {
		var victim string
		oldest := now.Add(-max(ck.interval, time.Minute)).UnixNano()
		for k, s := range ck.dp {
			if t := s.lastUsed.Load(); t < oldest {
				victim, oldest = k, t
			}
		}
		if victim == "" {
			return nil
		}
		delete(ck.dp, victim)
	}
	src = &crlSource{ck: ck, url: u, host: u}
	if pu, err := url.Parse(u); err == nil {
		src.host = strings.ToLower(pu.Host)
	}
	src.lastUsed.Store(now.UnixNano())
	ck.dp[u] = src
	return src
}

// rebuildIndex indexes the configured sources' current CRLs by issuer name.
func (ck *crlChecker) rebuildIndex() {
	ck.indexMu.Lock()
	defer ck.indexMu.Unlock()
	m := map[string][]*crlSource{}
	for _, src := range ck.configured {
		if snap := src.cur.Load(); snap != nil {
			k := string(snap.crl.Issuer)
			m[k] = append(m[k], src)
		}
	}
	ck.byIssuer.Store(&m)
}

// answer is this source's word on c; see crlChecker.status for load.
func (s *crlSource) answer(ctx context.Context, c, issuer *x509.Certificate, now time.Time, load bool, until time.Time) answer {
	if snap := s.cur.Load(); snap != nil && !bytes.Equal(snap.crl.Issuer, c.RawIssuer) {
		load = false // the source speaks for another issuer: never wait for it
	}
	snap, busy := s.current(ctx, now, issuer, load, until)
	why := func() error { // why the source has no fresh answer
		if busy {
			return fmt.Errorf("mtls: CRL %s not downloaded: %w", s.name(), errCRLDownloadsBusy)
		}
		return s.err()
	}
	if snap == nil {
		return answer{state: stateUnknown, source: "CRL", err: why()}
	}
	cl := snap.crl
	if !bytes.Equal(cl.Issuer, c.RawIssuer) {
		return answer{}
	}
	if err := cl.verifyWith(issuer); err != nil {
		// The CA may have been re-keyed under the same name, and the source serve the new
		// key's CRL by now: download again, led by this issuer (at most once per back-off).
		if !now.Before(snap.fetchedAt.Add(retryBackoff)) {
			s.fetchInBackground(now, issuer)
		}
		return answer{state: stateUnknown, source: "CRL", err: fmt.Errorf("%s: %w", s.name(), err)}
	}
	if !cl.Scope.Covers(c) {
		return answer{}
	}
	if cl.Serials.Revoked(c.SerialNumber) {
		return answer{state: stateRevoked, source: "CRL " + s.name(), thisUpdate: cl.ThisUpdate}
	}
	switch {
	case now.Before(cl.NextUpdate.Add(s.ck.rv.skew)):
		return answer{state: stateGood, source: "CRL", thisUpdate: cl.ThisUpdate, nextUpdate: cl.NextUpdate}
	case now.Before(cl.NextUpdate.Add(s.ck.rv.staleIfError)):
		return answer{state: stateStale, source: "CRL", thisUpdate: cl.ThisUpdate, nextUpdate: cl.NextUpdate, err: why()}
	}
	return answer{state: stateUnknown, source: "CRL", err: fmt.Errorf("mtls: CRL %s expired at %s: %w",
		s.name(), cl.NextUpdate.UTC().Format(time.RFC3339), why())}
}

func (s *crlSource) err() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.lastErr == nil {
		return errors.New("mtls: CRL " + s.name() + " not loaded")
	}
	return s.lastErr
}

// errCRLDownloadCut is why a distribution point's first download ended before the fetch timeout.
var errCRLDownloadCut = errors.New("timeout: nobody waited for the download past the revocation timeout")

// errCRLDownloadsBusy is why a distribution point's CRL was not downloaded for a request.
var errCRLDownloadsBusy = errors.New("too many CRL downloads under way")

// current returns the CRL in force and refreshes it in the background when due. If load is set
// and there is no CRL or it has expired, it waits for a download (at most the revocation timeout
// from the download's start), unless the source failed its last download: a source that cannot
// answer is retried in the background, never waited for. leader is the issuer, from a verified
// chain, of the certificate asked about.
//
// A distribution point's download runs among the downloads of distribution points, bounded in
// number and per host (its URL came from a certificate): busy reports that none could start,
// and the request goes on with the CRL in force, if any.
func (s *crlSource) current(ctx context.Context, now time.Time, leader *x509.Certificate, load bool, until time.Time) (snap *crlSnap, busy bool) {
	snap = s.cur.Load()
	if snap != nil && now.Before(snap.refreshAt) {
		return snap, false
	}
	if !load || snap != nil && now.Before(snap.crl.NextUpdate) || s.failedUntil.Load() != 0 {
		s.fetchInBackground(now, leader)
		return snap, false
	}
	l := s.start(now, !s.configured, leader)
	if l == nil {
		return s.cur.Load(), true
	}
	s.ck.rv.await(ctx, l, until)
	return s.cur.Load(), false
}

// fetchInBackground starts one refresh, unless one runs, the source failed a moment ago or too
// many refreshes run.
func (s *crlSource) fetchInBackground(now time.Time, leader *x509.Certificate) {
	if now.UnixNano() >= s.failedUntil.Load() && s.loading.Load() == nil {
		s.start(now, true, leader)
	}
}

// start returns the download under way, starting one if none is. A distribution point's
// download runs among the downloads of distribution points (rv.dpDownload), a bounded download
// of a configured source among the background refreshes; either does not start if there is no
// room (nil is returned, and only then). An unbounded one, for a request that needs the CRL of a
// configured URL or for New, runs in a goroutine of its own. Each ends within the fetch timeout,
// or when the Context is done; a distribution point's download while it has no CRL yet, within
// the revocation timeout unless requests wait for it (see crlLoad.extend). leader, if not nil,
// is the issuer from the verified chain that led to the download (see refresh).
func (s *crlSource) start(now time.Time, bounded bool, leader *x509.Certificate) *crlLoad {
	l := &crlLoad{started: now, done: make(chan struct{})}
	if !s.loading.CompareAndSwap(nil, l) {
		if cur := s.loading.Load(); cur != nil {
			return cur
		}
		close(l.done) // the download under way has just ended: nothing to wait for
		return l
	}
	soft := !s.configured && s.cur.Load() == nil && s.ck.rv.timeout < s.ck.timeout
	run := func(ctx context.Context) {
		defer close(l.done)
		defer s.loading.Store(nil)
		ctx, cancel := context.WithTimeout(ctx, s.ck.timeout)
		defer cancel()
		if soft {
			var cut context.CancelCauseFunc
			ctx, cut = context.WithCancelCause(ctx)
			l.mu.Lock()
			l.soft = time.Now().Add(s.ck.rv.timeout)
			l.timer = time.AfterFunc(s.ck.rv.timeout, func() { cut(errCRLDownloadCut) })
			l.mu.Unlock()
			defer l.timer.Stop()
		}
		_ = s.refresh(ctx, leader)
	}
	var started bool
	switch {
	case !s.configured:
		started = s.ck.rv.dpDownload(s.host, run)
	case bounded:
		started = s.ck.rv.background(run)
	default:
		go run(s.ck.rv.baseCtx)
		started = true
	}
	if !started {
		s.loading.Store(nil)
		close(l.done)
		return nil
	}
	return l
}

// refresh reads, scans and checks the CRL, and swaps it in; on failure the last good CRL stays.
// leader is the issuer from the verified chain of the request that led to the download, nil
// when none did (New, and the retries of configured URLs never loaded).
func (s *crlSource) refresh(ctx context.Context, leader *x509.Certificate) error {
	data, err := s.read(ctx)
	var cl *loadedCRL
	if err == nil {
		cl, err = parseCRLData(data)
	}
	s.swapMu.Lock()
	defer s.swapMu.Unlock()
	now := s.ck.rv.now()
	old := s.cur.Load()
	if err == nil {
		err = s.acceptable(cl, old, leader, now)
	}
	if err != nil {
		err = fmt.Errorf("mtls: CRL %s: %w", s.name(), err)
		s.setFailure(err, now)
		haveGood := old != nil
		var next time.Time
		if haveGood {
			next = old.crl.NextUpdate
		}
		s.ck.rv.logSourceFailure("CRL "+s.name(), err, haveGood, next)
		return err
	}
	if old != nil && old.crl.SameAs(cl.CRL) {
		cl = old.crl // keep the verification already done
	}
	refreshAt := refreshTime(now, cl.ThisUpdate, cl.NextUpdate)
	if t := now.Add(s.ck.interval); t.Before(refreshAt) {
		refreshAt = t
	}
	s.cur.Store(&crlSnap{crl: cl, refreshAt: refreshAt, fetchedAt: now})
	if !now.Before(cl.NextUpdate) {
		// The source serves an expired CRL: keep it (within StaleIfError it still answers) but
		// treat the source as failing.
		s.setFailure(fmt.Errorf("mtls: CRL %s: the source serves a CRL that expired at %s", s.name(),
			cl.NextUpdate.UTC().Format(time.RFC3339)), now)
	} else {
		s.failedUntil.Store(0)
		s.failures.Store(0)
		s.mu.Lock()
		s.lastErr = nil
		s.mu.Unlock()
	}
	if s.configured && (old == nil || !bytes.Equal(old.crl.Issuer, cl.Issuer)) {
		if old == nil && s.url != "" {
			s.ck.unloaded.Add(-1)
		}
		s.ck.rebuildIndex()
	}
	return nil
}

// setFailure records a failed download. The source is not asked again for retryBackoff; a
// distribution point, twice as long after each failure in a row, up to maxDPBackoff: its URL
// came from a certificate, and may never answer.
func (s *crlSource) setFailure(err error, now time.Time) {
	s.mu.Lock()
	s.lastErr = err
	s.mu.Unlock()
	backoff := retryBackoff
	if !s.configured {
		n := s.failures.Add(1)
		for i := int32(1); i < n && backoff < maxDPBackoff; i++ {
			backoff *= 2
		}
		backoff = min(backoff, maxDPBackoff)
	}
	s.failedUntil.Store(now.Add(backoff).UnixNano())
}

// acceptable refuses a CRL from the future, one older than a CRL of the same issuer key served
// before (a replay), one that no trusted key of its issuer verifies while such a key verified the
// CRLs served before, and a distribution point's CRL that no trusted key of its issuer verifies.
// A trusted key is the leader's, or one that verified a CRL here under the trust in force. A
// configured source's CRL that no key known here verifies is taken as is: it is verified with
// the issuer of the first chain that consults it. The caller holds swapMu.
func (s *crlSource) acceptable(cl *loadedCRL, old *crlSnap, leader *x509.Certificate, now time.Time) error {
	if cl.ThisUpdate.After(now.Add(s.ck.rv.skew)) {
		return fmt.Errorf("thisUpdate %s lies in the future", cl.ThisUpdate.UTC().Format(time.RFC3339))
	}
	if old != nil {
		if v := old.crl.verified.Load(); v != nil {
			s.remember(old.crl, v, true)
		} else if sg, trusted := s.signerOf(old.crl, leader); sg != nil {
			s.remember(old.crl, sg, trusted)
		}
	}
	signer, trusted := s.signerOf(cl, leader)
	if signer != nil {
		k := string(cl.Issuer) + string(signer.RawSubjectPublicKeyInfo)
		if m := s.marks[k]; m != nil && (cl.ThisUpdate.Before(m.thisUpdate) ||
			cl.Number != nil && m.number != nil && cl.Number.Cmp(m.number) < 0) {
			return errors.New("older than a CRL of the same issuer key served before (replayed?)")
		}
	}
	switch {
	case trusted:
		return nil
	case !s.configured:
		return errors.New("the signature does not verify with the key of the issuer of the certificate naming the distribution point")
	case old != nil && !bytes.Equal(old.crl.Issuer, cl.Issuer):
		// A configured source serves one issuer: an answer naming another would drop the
		// CRL in force, and nothing would ask the source again for the issuer it left.
		return fmt.Errorf("issued by %q, not by the issuer of the CRL in force", clip(issuerName(cl.Issuer)))
	case leader != nil && bytes.Equal(leader.RawSubject, cl.Issuer) || s.hasTrustedKey(cl.Issuer):
		return errors.New("the signature does not verify with a trusted key of the issuer, as the CRLs served before did")
	}
	return nil
}

// signerOf finds the key that signed cl among the leader's and those of the CRLs served before,
// and whether it is trusted. The caller holds swapMu.
func (s *crlSource) signerOf(cl *loadedCRL, leader *x509.Certificate) (*x509.Certificate, bool) {
	if leader != nil && bytes.Equal(leader.RawSubject, cl.Issuer) && cl.verifyWith(leader) == nil {
		return leader, true
	}
	for _, m := range s.marks {
		if m.trusted && bytes.Equal(m.signer.RawSubject, cl.Issuer) && cl.verifyWith(m.signer) == nil {
			return m.signer, true
		}
	}
	// A key no longer known to be trusted still identifies a replay; checkSigner does not
	// record it as the CRL's verified issuer.
	for _, m := range s.marks {
		if !m.trusted && bytes.Equal(m.signer.RawSubject, cl.Issuer) && cl.checkSigner(m.signer) == nil {
			return m.signer, false
		}
	}
	return nil, false
}

// hasTrustedKey reports whether a trusted key of the issuer named issuer verified a CRL here.
// The caller holds swapMu.
func (s *crlSource) hasTrustedKey(issuer []byte) bool {
	for _, m := range s.marks {
		if m.trusted && bytes.Equal(m.signer.RawSubject, issuer) {
			return true
		}
	}
	return false
}

// remember records a CRL that signer verified as the newest of that key, unless a newer one was
// seen; trusted: signer came from a chain verified under the trust in force, and its key becomes
// trusted here. The caller holds swapMu.
func (s *crlSource) remember(c *loadedCRL, signer *x509.Certificate, trusted bool) {
	k := string(c.Issuer) + string(signer.RawSubjectPublicKeyInfo)
	m := s.marks[k]
	if m == nil {
		if len(s.marks) >= maxCRLMarks {
			return
		}
		if s.marks == nil {
			s.marks = map[string]*crlMark{}
		}
		m = &crlMark{}
		s.marks[k] = m
	}
	if trusted || m.signer == nil {
		m.signer, m.trusted = signer, m.trusted || trusted
	}
	if c.ThisUpdate.After(m.thisUpdate) || m.thisUpdate.IsZero() {
		m.thisUpdate, m.number = c.ThisUpdate, c.Number
	}
}

// trustChanged forgets which keys were trusted: they were learnt from chains verified under the
// trust that was in force. The CRL in force is verified again by the next chain that consults
// it. What is known of the keys stays: an older CRL of a key seen before is still a replay.
func (s *crlSource) trustChanged() {
	s.swapMu.Lock()
	defer s.swapMu.Unlock()
	if snap := s.cur.Load(); snap != nil {
		if v := snap.crl.verified.Swap(nil); v != nil {
			s.remember(snap.crl, v, false)
		}
	}
	for _, m := range s.marks {
		m.trusted = false
	}
}

// sources lists the configured sources, then the distribution points.
func (ck *crlChecker) sources() []*crlSource {
	srcs := append([]*crlSource(nil), ck.configured...)
	ck.dpMu.RLock()
	for _, s := range ck.dp {
		srcs = append(srcs, s)
	}
	ck.dpMu.RUnlock()
	return srcs
}

// trustChanged drops, at every source, what depends on the trust in force.
func (ck *crlChecker) trustChanged() {
	for _, s := range ck.sources() {
		s.trustChanged()
	}
}

// read returns the bytes of the file or the body of the URL, bounded by maxBytes.
func (s *crlSource) read(ctx context.Context) ([]byte, error) {
	if s.path != "" {
		return certfile.Read(s.path, s.ck.maxBytes)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, s.url, nil)
	if err != nil {
		return nil, withoutURL(err)
	}
	limit := s.ck.maxBytes
	if !s.configured {
		limit = s.ck.dpMaxBytes
	}
	data, err := s.ck.rv.do(s.ck.rv.client, req, limit)
	if err != nil && errors.Is(context.Cause(ctx), errCRLDownloadCut) {
		return nil, errCRLDownloadCut
	}
	return data, err
}

// parseCRLData scans a DER CRL or the first "X509 CRL" block of PEM data.
func parseCRLData(data []byte) (*loadedCRL, error) {
	der, err := certfile.DER(data, "X509 CRL")
	if err != nil {
		return nil, err
	}
	c, err := crl.Parse(der)
	if err != nil {
		return nil, err
	}
	return &loadedCRL{CRL: c}, nil
}

// CRLSourceStatus describes one CRL source, for health checks and dashboards.
type CRLSourceStatus struct {
	// Source is the file path or URL; a URL without its user information and fragment, the
	// values of its query replaced by REDACTED (they may be secrets).
	Source string
	// DistributionPoint is true for a URL taken from a certificate rather than configured.
	DistributionPoint bool
	// Loaded is true once a CRL was read; the fields below describe the CRL in force.
	Loaded     bool
	Issuer     string
	ThisUpdate time.Time
	NextUpdate time.Time
	Entries    int
	// Err is why the last refresh failed (the CRL in force, if any, stays in force until it is
	// too stale); nil when it succeeded.
	Err error
}

// CRLStatus reports every CRL source in use: configured files and URLs first, then distribution
// points met so far. It is nil when CRLs are not checked.
func (m *Middleware) CRLStatus() []CRLSourceStatus {
	if m.revoc == nil || m.revoc.crl == nil {
		return nil
	}
	srcs := m.revoc.crl.sources()
	out := make([]CRLSourceStatus, 0, len(srcs))
	for _, s := range srcs {
		st := CRLSourceStatus{Source: s.name(), DistributionPoint: !s.configured}
		s.mu.Lock()
		st.Err = s.lastErr
		s.mu.Unlock()
		if snap := s.cur.Load(); snap != nil {
			st.Loaded = true
			var name pkix.RDNSequence
			if _, err := asn1.Unmarshal(snap.crl.Issuer, &name); err == nil {
				st.Issuer = name.String()
			}
			st.ThisUpdate, st.NextUpdate = snap.crl.ThisUpdate, snap.crl.NextUpdate
			st.Entries = snap.crl.Serials.Len()
		}
		out = append(out, st)
	}
	return out
}

// issuerName renders a raw issuer name for messages.
func issuerName(raw []byte) string {
	var name pkix.RDNSequence
	if _, err := asn1.Unmarshal(raw, &name); err != nil {
		return fmt.Sprintf("%x", raw)
	}
	var n pkix.Name
	n.FillFromRDNSequence(&name)
	return n.String()
}
