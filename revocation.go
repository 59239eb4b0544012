package mtls

import (
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"sync"
	"time"
)

// RevocationConfig turns on revocation checking (see [Config.Revocation]). Revocation is checked
// on every request, after the chain is verified, with caches of its own: a cached verification
// therefore never outlives a revocation answer.
//
// At least one of OCSP, CRL and DenyList must be set. The DenyList is checked first. With both
// OCSP and CRL, OCSP is asked first and the CRLs already loaded are consulted too: a certificate
// that any of them lists is refused, whatever OCSP says. CRLs are downloaded (and waited for)
// only when OCSP gives no answer (responder down, unknown status).
//
// The defaults fail closed: a certificate whose status cannot be established is refused with
// [ErrRevocationUnavailable] (HTTP 503, reason revocation_unavailable), a revoked one with
// [ErrRevoked] (HTTP 401, reason certificate_revoked). Certificates accepted by their pinned
// fingerprint ([Config.PinnedSHA256]) are checked against the DenyList only: they have no
// verified issuer to ask; remove the pin to revoke one. A certificate that is not pinned but whose
// chain holds no issuer (a client certificate configured as a root) has no status that OCSP or a
// CRL could give: it is refused with [ErrRevocationUnavailable], or accepted flagged FailOpen
// under DangerouslyFailOpen.
//
// Errors, logs, events, [Middleware.CRLStatus] and [Middleware.ReloadStatus] show the URLs of
// revocation sources (DenyListURL, CRL URLs, OCSP responders, and the URLs the certificates
// name) without their user information and fragment, each query value replaced by REDACTED: a
// URL may carry a secret. A URL that does not parse shows as "(an invalid URL)", and the errors
// of fetching one say what failed (a timeout, a TLS failure, a refused connection, an invalid
// redirect), never what the HTTP client or the URL parser quoted of it.
type RevocationConfig struct {
	// OCSP asks the issuers' OCSP responders. Nil: no OCSP.
	OCSP *OCSPConfig
	// CRL checks certificate revocation lists. Nil: no CRLs.
	CRL *CRLConfig
	// DenyList refuses the certificates it lists at once, whatever OCSP and the CRLs say: the way
	// to revoke a certificate between two CRL publications. Nil: none. Keep the pointer to
	// change the list at run time.
	DenyList *DenyList
	// DenyListFile is a deny list file (see [ParseDenyList]) of at most 64 MiB whose entries are
	// refused too, beside DenyList's. It is read by New and again by [Middleware.Reload], in one
	// swap with the trust; a file that seems cut short is refused as [DenyList.LoadFile] says
	// (write it to a temporary name and rename it). Default none.
	DenyListFile string
	// DenyListURL is the https URL of a deny list (see [ParseDenyList]) of at most 64 MiB whose
	// entries are refused too. New fetches it, and fails if it cannot: the service does not start
	// without its deny list. A goroutine then fetches it again every DenyListInterval, with
	// HTTPClient, each fetch bounded by Timeout and stopped by [Middleware.Close] or Context; a
	// fetch that fails keeps the list in force, and shows in [Middleware.ReloadStatus] and the
	// log. The list is not signed: only https is accepted, redirects included (the default
	// client follows none). A body that seems cut short (empty, or without a final newline) is
	// refused: serve a list without entries as a comment line. Default none.
	// Errors and logs show it as RevocationConfig says, its path as written: put a secret in
	// the query, not the path.
	DenyListURL string
	// DenyListInterval is how often DenyListURL is fetched again. Default 5 minutes; negative:
	// fetched by New only.
	DenyListInterval time.Duration

	// CheckChain checks every certificate of the verified chain but the trust anchor. Default
	// false: the leaf only.
	CheckChain bool

	// StaleIfError is how long past its nextUpdate a previously fetched good answer (an OCSP
	// response or a CRL) may still be used while its responder or distribution point is failing.
	// Such requests carry [RevocationStatus.Stale]; the source's failure is logged, and so are
	// such requests (at most one record every 30 seconds). Default 10 minutes; negative: never
	// use a stale answer.
	StaleIfError time.Duration
	// ClockSkew is the tolerance when comparing thisUpdate and nextUpdate with the clock.
	// Default 2 minutes.
	ClockSkew time.Duration

	// DangerouslyFailOpen accepts certificates whose revocation status cannot be established
	// (responder down, no CRL, a stale answer past StaleIfError). Such requests carry
	// [RevocationStatus.FailOpen] and are logged like stale ones. It defeats revocation against anyone who can
	// block or delay the server's traffic to the responder or the CRL distribution point, as an
	// attacker holding a stolen certificate will try to; prefer a larger StaleIfError. Default
	// false: refuse with 503.
	DangerouslyFailOpen bool

	// HTTPClient fetches OCSP responses and CRLs. Default: a client with Timeout that does not
	// follow redirects.
	HTTPClient *http.Client
	// Timeout bounds one OCSP query, and how long requests wait for a CRL download (counted
	// from the download's start; the download itself may go on, up to CRLConfig.FetchTimeout,
	// for the requests that follow). A distribution point's first download that no request
	// waits for any more ends after Timeout. Default 5 seconds.
	Timeout time.Duration
	// Context, when done, stops refreshes in the background and cancels those under way.
	// Default: never done. Besides the downloads of CRLConfig.URLs (by New, and for requests
	// that find their CRL expired: one at a time per URL), background refreshes are started by
	// requests, at most 4 at a time, and so are the downloads of distribution points, in a pool
	// of their own (see CRLConfig.DistributionPoints), each bounded by its timeout: no goroutine
	// runs between them.
	Context context.Context
}

// OCSPConfig configures OCSP checking.
type OCSPConfig struct {
	// Responder is the URL of the responder to ask for every certificate, instead of the
	// responder named in the certificate's Authority Information Access. Default: the
	// certificate's first http or https OCSP URL. A responder URL with a query is asked by
	// POST only: the GET form appends the request to the URL's path.
	// Errors and logs show it as RevocationConfig says, its path as written: put a secret in
	// the query, not the path.
	Responder string
	// CacheSize bounds the number of certificates whose answers are kept. Default 10000.
	CacheSize int
	// MaxResponseBytes bounds a response body. Default 64 KiB.
	MaxResponseBytes int64
	// MaxAge bounds how long a cached answer goes without being asked again: after it, a new
	// answer is fetched in the background (the cached one still serves until its nextUpdate, so
	// a responder outage does not refuse anyone early). Responders often sign answers valid for
	// days; this is how soon a revocation is seen while the responder is reachable. Default 1
	// hour; a negative value leaves refreshes to the answers' nextUpdate.
	MaxAge time.Duration
}

// CRLConfig configures CRL checking. A CRL is used for a certificate only if the CRL's signature
// verifies with the key of the certificate's issuer from the verified chain, so a CRL never
// speaks for another CA, even one with the same name. A CRL must be a complete, direct, version 2
// CRL with a nextUpdate and a non-critical cRLNumber (RFC 5280 5.2.3), without unknown critical
// extensions; any other is refused as malformed, like a CRL that cannot be read.
type CRLConfig struct {
	// Files are CRL files (DER or PEM), read by New (an unreadable or invalid file is an error)
	// and read again at RefreshInterval and before their nextUpdate.
	Files []string
	// URLs are http or https URLs of CRLs, downloaded in the background from New and again at
	// RefreshInterval and before their nextUpdate. Until a URL's first CRL is loaded its issuer
	// is unknown: a request for an issuer without a known CRL waits for the first downloads
	// still under way, at most the revocation Timeout. A URL that failed is retried in the
	// background, every 5 seconds at most; no request waits for it.
	// Errors and logs show it as RevocationConfig says, its path as written: put a secret in
	// the query, not the path.
	URLs []string
	// DistributionPoints also fetches the CRLs named in the certificates' CRL distribution
	// points (http and https only; the first 4 of a certificate; at most 256 distinct URLs at a
	// time, a URL unused for a RefreshInterval making room for a new one). Such a CRL is
	// swapped in only if the issuer of the certificate that led to its download verifies it.
	// Their downloads, those that requests wait for included, run apart from the background
	// refreshes of URLs and OCSP answers, which URLs named by certificates cannot hold up: at
	// most 8 at a time, at most 2 from one host, one per URL. A request whose distribution
	// point's CRL cannot be downloaded then is answered as when the CRL is unavailable
	// (refused, or within StaleIfError on the CRL in force). A first download that no request
	// waits for any more ends after RevocationConfig.Timeout; a point that fails is asked again
	// after 5 seconds, twice as long after each failure in a row, up to 5 minutes. Default
	// false.
	DistributionPoints bool
	// RefreshInterval is how often a CRL is fetched again even before its nextUpdate, to learn of
	// new revocations early. Default 1 hour.
	RefreshInterval time.Duration
	// FetchTimeout bounds the download of one CRL. Default 30 seconds.
	FetchTimeout time.Duration
	// MaxBytes bounds the size of one CRL of Files and URLs. Default 256 MiB (a CRL of a million
	// entries is about 40 MB).
	MaxBytes int64
	// DistributionPointMaxBytes bounds the size of one distribution point's CRL: these URLs come
	// from certificates, up to 256 at a time. Default 32 MiB (about 800,000 entries).
	DistributionPointMaxBytes int64
}

// RevocationStatus says whether a request was let through on less than fresh revocation answers.
// It is the zero value for requests that passed on fresh answers, and for all requests when
// revocation is not checked.
type RevocationStatus struct {
	// Stale: at least one certificate was accepted on a good answer past its nextUpdate (within
	// [RevocationConfig.StaleIfError]) because its source was failing.
	Stale bool
	// NextUpdate is, when Stale, the earliest nextUpdate of the stale answers used.
	NextUpdate time.Time
	// FailOpen: the status of at least one certificate could not be established and
	// [RevocationConfig.DangerouslyFailOpen] let the request through.
	FailOpen bool
	// Err says why fresh answers were missing, for logs. Never show it to the client.
	Err error
}

// Degraded reports whether the request was accepted without fresh revocation answers.
func (s RevocationStatus) Degraded() bool { return s.Stale || s.FailOpen }

const (
	defaultStaleIfError    = 10 * time.Minute
	defaultClockSkew       = 2 * time.Minute
	defaultRevocationWait  = 5 * time.Second
	defaultOCSPCacheSize   = 10000
	defaultOCSPMaxBytes    = 64 << 10
	defaultCRLInterval     = time.Hour
	defaultCRLFetchTimeout = 30 * time.Second
	defaultCRLMaxBytes     = 256 << 20
	defaultCDPMaxBytes     = 32 << 20
	maxDPSources           = 256
	maxDPPerCertificate    = 4 // distribution points of one certificate that are used
	maxBackground          = 4
	// maxDPDownloads bounds the downloads of distribution points' CRLs under way at once, in a
	// pool of their own: URLs that certificates name never hold up the refreshes of the
	// configured sources and of OCSP answers. Twice maxDPPerCertificate: one certificate's
	// points take at most half.
	maxDPDownloads = 2 * maxDPPerCertificate
	// maxDPDownloadsPerHost bounds those downloads from one host, so that the points of one
	// certificate, or of one issuer, on one host that does not answer leave the others room.
	maxDPDownloadsPerHost = 2
	// retryBackoff is how long a failed source is not asked again; meanwhile requests get the
	// stale answer, or none. A distribution point that keeps failing waits twice as long after
	// each failure, up to maxDPBackoff.
	retryBackoff = 5 * time.Second
	maxDPBackoff = 5 * time.Minute
	// minRefreshDelay keeps refreshes of short-lived answers from running back to back.
	minRefreshDelay = 5 * time.Second
	// degradedLogEvery rate-limits the log of requests accepted on degraded answers.
	degradedLogEvery = 30 * time.Second
	// defaultDenyListInterval is how often DenyListURL is fetched.
	defaultDenyListInterval = 5 * time.Minute
)

// revocation is the revocation step of the pipeline.
type revocation struct {
	now          func() time.Time
	skew         time.Duration
	staleIfError time.Duration
	failOpen     bool
	chain        bool
	timeout      time.Duration
	client       *http.Client
	logger       *slog.Logger
	baseCtx      context.Context
	sem          chan struct{}
	dpSem        chan struct{}                        // downloads of distribution points (see maxDPDownloads)
	dpHostsMu    sync.Mutex                           // guards dpHosts
	dpHosts      map[string]int                       // downloads of distribution points under way, by host
	after        func(time.Duration) <-chan time.Time // time.After; tests record the waits

	ocsp        *ocspChecker
	crl         *crlChecker
	deny        *DenyList
	remote      *DenyList // DenyListURL's entries; nil: no URL
	remoteURL   string
	remoteName  string        // remoteURL as reportedURL shows it
	remoteHTTP  *http.Client  // HTTPClient, following redirects to https URLs only
	remoteEvery time.Duration // negative: no refetch
}

// revState orders answers: a higher state wins when sources disagree.
type revState uint8

const (
	stateNone    revState = iota // the source does not speak for the certificate
	stateUnknown                 // the source should, but has no usable answer
	stateStale                   // good, but past nextUpdate (within StaleIfError)
	stateGood                    // good and fresh
	stateRevoked                 // revoked
)

// answer is one source's word on one certificate.
type answer struct {
	state      revState
	source     string
	thisUpdate time.Time // of the answer (the OCSP response, the CRL)
	nextUpdate time.Time
	revokedAt  time.Time
	err        error
}

// merge keeps the stronger of two answers, and the reasons of both when neither is good.
func merge(a, b answer) answer {
	if b.state > a.state {
		if b.state <= stateStale && a.err != nil {
			b.err = errors.Join(a.err, b.err)
		}
		return b
	}
	if a.state <= stateStale && b.err != nil {
		a.err = errors.Join(a.err, b.err)
	}
	return a
}

// revInfo names the oldest answer a revocation check relied on, for the decision's event.
type revInfo struct {
	source     string
	thisUpdate time.Time
}

// check is the revocation step. It returns id itself on the common path, a copy carrying a
// RevocationStatus when it accepts on degraded answers, or an *Error; and the oldest answer it
// relied on. file is the deny list of DenyListFile loaded with the request's state (nil: none).
func (rv *revocation) check(ctx context.Context, file *DenyList, id *Identity) (*Identity, revInfo, error) {
	if e := rv.denied(file, id); e != nil {
		return nil, revInfo{}, e
	}
	if id.Pinned || rv.ocsp == nil && rv.crl == nil {
		return id, revInfo{}, nil
	}
	if len(id.Chain) < 2 {
		// Not pinned, yet no issuer to ask (a client certificate configured as a root): the
		// status cannot be established, which is not "good".
		return rv.noIssuer(id)
	}
	status, unknown, info, e := rv.askChain(ctx, id)
	if e != nil {
		return nil, info, e
	}
	if unknown != nil {
		return rv.unknown(id, status, unknown, info)
	}
	if !status.Degraded() {
		return id, info, nil
	}
	cp := *id
	cp.Revocation = status
	return &cp, info, nil
}

// denied returns the refusal of id by a deny list (the configured one, file, the remote one),
// or nil.
func (rv *revocation) denied(file *DenyList, id *Identity) *Error {
	for _, d := range [...]*DenyList{rv.deny, file, rv.remote} {
		if d == nil {
			continue
		}
		if detail := d.match(id, rv.chain); detail != "" {
			e := newError(ErrRevoked, detail, nil)
			e.Leaf = id.Leaf
			return e
		}
	}
	return nil
}

// noIssuer is the outcome of a check of an identity whose chain holds no issuer to ask.
func (rv *revocation) noIssuer(id *Identity) (*Identity, revInfo, error) {
	err := errors.New("mtls: the chain holds no issuer of the certificate to ask about its revocation")
	if !rv.failOpen {
		e := newError(ErrRevocationUnavailable, "", err)
		e.Leaf = id.Leaf
		return nil, revInfo{}, e
	}
	cp := *id
	cp.Revocation = RevocationStatus{FailOpen: true, Err: err}
	return &cp, revInfo{}, nil
}

// unknown is the outcome of a check whose status could not be established (err says why),
// beside status, what the other answers said: a refusal, or with DangerouslyFailOpen a copy
// of id accepted on it.
func (rv *revocation) unknown(id *Identity, status RevocationStatus, err error, info revInfo) (*Identity, revInfo, error) {
	if !rv.failOpen {
		e := newError(ErrRevocationUnavailable, "", err)
		e.Leaf = id.Leaf
		return nil, info, e
	}
	status.FailOpen = true
	status.Err = errors.Join(status.Err, err)
	cp := *id
	cp.Revocation = status
	return &cp, info, nil
}

// askChain asks the status of the leaf of id (of every certificate of its chain but the root,
// when the chain is checked), all within the timeout of one request. It returns what the stale
// answers say, why the status of some is unknown (nil: none), the oldest answer relied on, and
// the refusal of a revoked certificate, which ends the asking.
func (rv *revocation) askChain(ctx context.Context, id *Identity) (status RevocationStatus, unknown error, info revInfo, revoked *Error) {
	n := 1
	if rv.chain {
		n = len(id.Chain) - 1
	}
	now := rv.now()
	until := now.Add(rv.timeout) // what the request may wait, for the whole chain
	for i := 0; i < n; i++ {
		c, issuer := id.Chain[i], id.Chain[i+1]
		a := rv.status(ctx, c, issuer, now, until)
		if a.state == stateRevoked {
			e := newError(ErrRevoked, revokedDetail(a, c), nil)
			e.Leaf = id.Leaf
			return status, unknown, info, e
		}
		if a.state >= stateStale && (info.thisUpdate.IsZero() || a.thisUpdate.Before(info.thisUpdate)) {
			info = revInfo{a.source, a.thisUpdate}
		}
		unknown = tally(&status, unknown, a, c)
	}
	return status, unknown, info, nil
}

// tally adds the answer a about c that is not a revocation to status (a stale one) or to
// unknown (no answer), and returns unknown.
func tally(status *RevocationStatus, unknown error, a answer, c *x509.Certificate) error {
	switch a.state {
	case stateGood:
	case stateStale:
		if !status.Stale || a.nextUpdate.Before(status.NextUpdate) {
			status.NextUpdate = a.nextUpdate
		}
		status.Stale = true
		status.Err = errors.Join(status.Err, a.err)
	default:
		err := a.err
		if err == nil {
			err = errors.New("mtls: no revocation source speaks for the certificate")
		}
		unknown = errors.Join(unknown, fmt.Errorf("serial %s of %q: %w", FormatSerial(c.SerialNumber), clip(c.Issuer.String()), err))
	}
	return unknown
}

// revokedDetail says which source revoked c, and since when, for the operator.
func revokedDetail(a answer, c *x509.Certificate) string {
	what := fmt.Sprintf("%s says serial %s of %q is revoked", a.source, FormatSerial(c.SerialNumber), clip(c.Issuer.String()))
	if !a.revokedAt.IsZero() {
		what += " since " + a.revokedAt.UTC().Format(time.RFC3339)
	}
	if !a.thisUpdate.IsZero() {
		what += " (answer of " + a.thisUpdate.UTC().Format(time.RFC3339) + ")"
	}
	return what
}

// status asks OCSP, then the CRLs. The CRLs already loaded are always consulted, so that one
// listing the certificate refuses it whatever OCSP says; they are downloaded, and waited for, only
// when OCSP has no answer. Answers are waited for until the request's deadline at the latest;
// with CRLs configured, OCSP's only until halfway, so that a responder that does not answer
// leaves the CRLs time to.
func (rv *revocation) status(ctx context.Context, c, issuer *x509.Certificate, now, until time.Time) answer {
	var a answer
	if rv.ocsp != nil {
		ocspUntil := until
		if rv.crl != nil {
			t := rv.now()
			ocspUntil = t.Add(until.Sub(t) / 2)
		}
		a = rv.ocsp.status(ctx, c, issuer, now, ocspUntil)
		if a.state == stateRevoked {
			return a
		}
	}
	if rv.crl != nil {
		a = merge(a, rv.crl.status(ctx, c, issuer, now, a.state < stateGood, until))
	}
	return a
}

// trustChanged drops the revocation state that depends on the trust in force: which issuer
// keys may sign the CRLs of a source (see crlSource.trustChanged). The middleware calls it when
// the trust is reloaded. Cached OCSP answers stay: they are keyed by the issuer's key and serial,
// verified with that key, and found only through chains verified under the trust in force.
func (rv *revocation) trustChanged() {
	if rv.crl != nil {
		rv.crl.trustChanged()
	}
}

// await waits for l to end, for at most the revocation timeout counted from its start, not past
// until (unless zero), and while ctx lives. A nil l is not waited for.
func (rv *revocation) await(ctx context.Context, l *crlLoad, until time.Time) {
	if l == nil {
		return
	}
	select {
	case <-l.done:
		return
	default:
	}
	end := l.started.Add(rv.timeout)
	if !until.IsZero() && until.Before(end) {
		end = until // the request's own deadline comes first
	}
	d := end.Sub(rv.now())
	if d <= 0 || ctx.Err() != nil {
		return
	}
	l.extend(rv.timeout) // someone waits: the download may go on for longer
	select {
	case <-l.done:
	case <-ctx.Done():
	case <-rv.after(d):
	}
}

// background runs f in a goroutine bounded in number, unless the Context is done or too many run.
func (rv *revocation) background(f func(ctx context.Context)) bool {
	if rv.baseCtx.Err() != nil {
		return false
	}
	select {
	case rv.sem <- struct{}{}:
	default:
		return false
	}
	go func() {
		defer func() { <-rv.sem }()
		f(rv.baseCtx)
	}()
	return true
}

// dpDownload runs f in a goroutine among the downloads of distribution points, bounded in
// number (maxDPDownloads) and per host (maxDPDownloadsPerHost), unless the Context is done or
// there is no room.
func (rv *revocation) dpDownload(host string, f func(ctx context.Context)) bool {
	if rv.baseCtx.Err() != nil {
		return false
	}
	rv.dpHostsMu.Lock()
	if rv.dpHosts[host] >= maxDPDownloadsPerHost {
		rv.dpHostsMu.Unlock()
		return false
	}
	select {
	case rv.dpSem <- struct{}{}:
	default:
		rv.dpHostsMu.Unlock()
		return false
	}
	if rv.dpHosts == nil {
		rv.dpHosts = map[string]int{}
	}
	rv.dpHosts[host]++
	rv.dpHostsMu.Unlock()
	go func() {
		defer func() {
			rv.dpHostsMu.Lock()
			if rv.dpHosts[host]--; rv.dpHosts[host] == 0 {
				delete(rv.dpHosts, host)
			}
			rv.dpHostsMu.Unlock()
			<-rv.dpSem
		}()
		f(rv.baseCtx)
	}()
	return true
}

// logSourceFailure records that a revocation source failed and what requests get meanwhile.
func (rv *revocation) logSourceFailure(what string, err error, haveGood bool, nextUpdate time.Time) {
	if rv.logger == nil {
		return
	}
	var meanwhile string
	switch {
	case haveGood && rv.now().Before(nextUpdate):
		meanwhile = "the current answer is still fresh"
	case haveGood && rv.now().Before(nextUpdate.Add(rv.staleIfError)):
		meanwhile = "accepting on the stale answer until " + nextUpdate.Add(rv.staleIfError).UTC().Format(time.RFC3339)
	case rv.failOpen:
		meanwhile = "accepting without a revocation status (DangerouslyFailOpen)"
	default:
		meanwhile = "refusing with revocation_unavailable"
	}
	rv.logger.LogAttrs(rv.baseCtx, slog.LevelWarn, "mtls: revocation source failed",
		slog.String("source", what), slog.String("error", clipLog(err.Error())), slog.String("meanwhile", meanwhile))
}
