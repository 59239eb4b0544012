package mtls

import (
	"bytes"
	"context"
	"crypto"
	_ "crypto/sha1" // OCSP requests name certificates by SHA-1 CertIDs (an identifier, not a signature)
	"crypto/x509"
	"encoding/base64"
	"errors"
	"fmt"
	"hash/maphash"
	"io"
	"math/big"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/certgate/mtls/internal/crl"
	"github.com/certgate/mtls/internal/ocspcheck"
	"github.com/certgate/mtls/internal/redact"
	"golang.org/x/crypto/ocsp"
	"golang.org/x/sync/singleflight"
)

// defaultOCSPMaxAge is OCSPConfig.MaxAge's default.
const defaultOCSPMaxAge = time.Hour

// ocspChecker asks OCSP responders and caches their answers per (issuer key, serial).
type ocspChecker struct {
	rv        *revocation
	responder string // override of the certificates' AIA
	maxBytes  int64
	max       int
	maxAge    time.Duration // <= 0: refresh at the answers' own pace
	seed      maphash.Seed

	mu      sync.RWMutex
	entries map[uint64]*ocspEntry
	// revoked remembers the revocations seen, apart from entries (which make room by evicting),
	// so that a response from before a revocation, replayed once the entry is gone, cannot undo
	// it. Bounded by max too.
	revoked map[uint64]ocspRevocation

	flight  singleflight.Group
	queries atomic.Int64 // responder queries sent, for tests and metrics
}

// ocspRevocation is a revocation seen for one certificate.
type ocspRevocation struct {
	issuerSPKI []byte
	serial     *big.Int
	at         time.Time // the response's thisUpdate
}

// revokedBefore reports whether a revocation of c (issued by issuer) was seen in a response not
// older than t: a good answer from then is a replay (or the end of a certificate hold, which a
// newer response tells).
func (o *ocspChecker) revokedBefore(k uint64, c, issuer *x509.Certificate, t time.Time) bool {
	o.mu.RLock()
	r, ok := o.revoked[k]
	o.mu.RUnlock()
	return ok && r.serial.Cmp(c.SerialNumber) == 0 && bytes.Equal(r.issuerSPKI, issuer.RawSubjectPublicKeyInfo) &&
		!t.After(r.at)
}

func (o *ocspChecker) rememberRevocation(k uint64, e *ocspEntry) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if _, ok := o.revoked[k]; !ok && len(o.revoked) >= o.max {
		for kk := range o.revoked { // make room: an arbitrary one
			delete(o.revoked, kk)
			break
		}
	}
	o.revoked[k] = ocspRevocation{issuerSPKI: e.issuerSPKI, serial: e.serial, at: e.thisUpdate}
}

// ocspEntry is an immutable answer (or the memory of a failure) for one certificate; updates
// replace it. Only refreshing changes in place.
type ocspEntry struct {
	issuerSPKI []byte
	serial     *big.Int
	cert       *x509.Certificate // kept to refresh in the background
	issuer     *x509.Certificate

	has        bool // an answer (good or revoked) is held
	revoked    bool
	revokedAt  time.Time
	thisUpdate time.Time
	nextUpdate time.Time
	refreshAt  time.Time

	failedUntil time.Time // no new query before this, after a failure
	lastErr     error

	refreshing atomic.Bool
}

// checkFetchURL accepts absolute http and https URLs.
func checkFetchURL(raw string) error {
	u, err := url.Parse(raw)
	if err != nil {
		return errInvalidURL
	}
	if u.Scheme != "http" && u.Scheme != "https" || u.Host == "" {
		return fmt.Errorf("%q is not an absolute http or https URL", reportedURL(raw))
	}
	return nil
}

// key places a certificate in the cache map. It hashes the tails of the certificate's signature
// and of the issuer's key, which are cheap to reach and differ between certificates and between
// issuers; a hit is then confirmed on the serial number and the issuer's whole key, so the map
// key only needs to spread entries, not to identify them.
func (o *ocspChecker) key(c, issuer *x509.Certificate) uint64 {
	var h maphash.Hash
	h.SetSeed(o.seed)
	h.Write(tail(c.Signature, 32))
	h.Write(tail(issuer.RawSubjectPublicKeyInfo, 32))
	return h.Sum64()
}

func tail(b []byte, n int) []byte {
	if len(b) > n {
		return b[len(b)-n:]
	}
	return b
}

func (o *ocspChecker) get(k uint64, c, issuer *x509.Certificate) *ocspEntry {
	o.mu.RLock()
	e := o.entries[k]
	o.mu.RUnlock()
	if e == nil || e.serial.Cmp(c.SerialNumber) != 0 || !bytes.Equal(e.issuerSPKI, issuer.RawSubjectPublicKeyInfo) {
		return nil
	}
	return e
}

func (o *ocspChecker) put(k uint64, e *ocspEntry, now time.Time) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if _, ok := o.entries[k]; !ok && len(o.entries) >= o.max {
		// Make room: drop an expired entry among a few, or else an arbitrary one.
		const visits = 8
		var first uint64
		removed, i := false, 0
		for kk, old := range o.entries {
			if i == 0 {
				first = kk
			}
			if !now.Before(old.nextUpdate) && !now.Before(old.failedUntil) {
				delete(o.entries, kk)
				removed = true
			}
			if i++; i == visits {
				break
			}
		}
		if !removed {
			delete(o.entries, first)
		}
	}
	o.entries[k] = e
}

// status answers for c, issued by issuer, at now.
func (o *ocspChecker) status(ctx context.Context, c, issuer *x509.Certificate, now, until time.Time) answer {
	k := o.key(c, issuer)
	e := o.get(k, c, issuer)
	if e != nil && e.has {
		if now.Before(e.refreshAt) {
			return o.answerOf(e, now)
		}
		if now.Before(e.nextUpdate) || e.lastErr != nil && now.Before(e.nextUpdate.Add(o.rv.staleIfError)) {
			// Fresh, or stale while the responder fails: no request waits for it again; a
			// refresh runs in the background once the back-off is over.
			if !now.Before(e.failedUntil) {
				o.refreshInBackground(k, e)
			}
			return o.answerOf(e, now)
		}
	}
	if e != nil && now.Before(e.failedUntil) {
		return o.answerOf(e, now)
	}
	e = o.fetch(ctx, k, c, issuer, until)
	return o.answerOf(e, now)
}

// answerOf turns an entry into an answer at now.
func (o *ocspChecker) answerOf(e *ocspEntry, now time.Time) answer {
	switch {
	case e == nil:
		return answer{state: stateUnknown, err: errors.New("mtls: OCSP: no answer")}
	case e.has && e.revoked:
		return answer{state: stateRevoked, source: "OCSP", revokedAt: e.revokedAt, thisUpdate: e.thisUpdate}
	case e.has && now.Before(e.nextUpdate.Add(o.rv.skew)):
		// Within the clock skew tolerance, as ocspcheck.Verify and CRLs allow.
		return answer{state: stateGood, source: "OCSP", thisUpdate: e.thisUpdate, nextUpdate: e.nextUpdate}
	case e.has && now.Before(e.nextUpdate.Add(o.rv.staleIfError)):
		return answer{state: stateStale, source: "OCSP", thisUpdate: e.thisUpdate, nextUpdate: e.nextUpdate, err: e.lastErr}
	}
	err := e.lastErr
	if err == nil {
		err = errors.New("mtls: OCSP: the cached answer expired")
	}
	return answer{state: stateUnknown, source: "OCSP", err: err}
}

// refreshInBackground starts one refresh of e, unless one runs or too many refreshes do.
func (o *ocspChecker) refreshInBackground(k uint64, e *ocspEntry) {
	if !e.refreshing.CompareAndSwap(false, true) {
		return
	}
	if !o.rv.background(func(ctx context.Context) {
		o.fetch(ctx, k, e.cert, e.issuer, time.Time{})
		e.refreshing.Store(false)
	}) {
		e.refreshing.Store(false)
	}
}

// fetch queries the responder once for all concurrent callers and stores the outcome. A caller
// whose ctx ends first gets the entry it had (nil if none) while the query goes on for the others.
func (o *ocspChecker) fetch(ctx context.Context, k uint64, c, issuer *x509.Certificate, until time.Time) *ocspEntry {
	// The serial's sign and length, then its magnitude and the issuer's key: Bytes alone is the
	// absolute value, and would give 5 and -5 one query.
	var fk [2*crl.MaxSerialLen + 4]byte
	serial := c.SerialNumber.Bytes()
	flightKey := append(fk[:0], byte(c.SerialNumber.Sign()+1), byte(len(serial)>>8), byte(len(serial)))
	flightKey = append(flightKey, serial...)
	flightKey = append(flightKey, issuer.RawSubjectPublicKeyInfo...)
	ch := o.flight.DoChan(string(flightKey), func() (any, error) {
		return o.ask(ctx, k, c, issuer), nil
	})
	var deadline <-chan time.Time // nil: bounded by ctx and the query's own timeout only
	if !until.IsZero() {
		deadline = o.rv.after(max(0, until.Sub(o.rv.now())))
	}
	var err error
	select {
	case r := <-ch:
		return r.Val.(*ocspEntry)
	case <-ctx.Done():
		err = ctx.Err()
	case <-deadline:
		err = errors.New("the request's time for revocation checks ran out")
	}
	if e := o.get(k, c, issuer); e != nil {
		return e
	}
	return &ocspEntry{lastErr: fmt.Errorf("mtls: OCSP: %w", err)}
}

// ask is the one query of fetch's flight: it asks the responder about c, unless another query
// finished meanwhile, and stores the outcome.
func (o *ocspChecker) ask(ctx context.Context, k uint64, c, issuer *x509.Certificate) *ocspEntry {
	now := o.rv.now()
	old := o.get(k, c, issuer)
	// Another query may have finished between the caller's look-up and this one.
	if old != nil && (old.has && now.Before(old.refreshAt) || now.Before(old.failedUntil)) && !old.refreshing.Load() {
		return old
	}
	// Shared by every waiting caller: no single caller's cancellation stops it, but the
	// Context of the configuration does.
	fctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), o.rv.timeout)
	defer cancel()
	defer context.AfterFunc(o.rv.baseCtx, cancel)()
	resp, err := o.query(fctx, c, issuer, now)
	now = o.rv.now()
	e := &ocspEntry{
		issuerSPKI: issuer.RawSubjectPublicKeyInfo,
		serial:     c.SerialNumber,
		cert:       c,
		issuer:     issuer,
	}
	if err == nil {
		err = o.doubt(resp, old, k, c, issuer)
	}
	if err != nil {
		e.failedUntil = now.Add(retryBackoff)
		e.lastErr = err
		if old != nil && old.has {
			e.has, e.revoked, e.revokedAt = true, old.revoked, old.revokedAt
			e.thisUpdate, e.nextUpdate, e.refreshAt = old.thisUpdate, old.nextUpdate, old.refreshAt
		}
		o.rv.logSourceFailure(fmt.Sprintf("OCSP for serial %s of %q", FormatSerial(c.SerialNumber), clip(issuer.Subject.String())), err, e.has && !e.revoked, e.nextUpdate)
	} else {
		o.take(e, resp, now)
	}
	if e.has && e.revoked {
		o.rememberRevocation(k, e)
	}
	o.put(k, e, now)
	return e
}

// doubt returns why a verified response is not to be believed: it does not know the
// certificate, or it is older than the answer in force (old), or it says good where a response
// not older said revoked; nil if none of these.
func (o *ocspChecker) doubt(resp *ocsp.Response, old *ocspEntry, k uint64, c, issuer *x509.Certificate) error {
	switch {
	case resp.Status == ocsp.Unknown:
		return errors.New("mtls: OCSP responder does not know the certificate")
	case old != nil && old.has && resp.ThisUpdate.Before(old.thisUpdate):
		// A replayed response, older than the one in force, must not undo a revocation.
		return fmt.Errorf("mtls: OCSP response of %s is older than the answer in force (replayed?)",
			resp.ThisUpdate.UTC().Format(time.RFC3339))
	case resp.Status == ocsp.Good && o.revokedBefore(k, c, issuer, resp.ThisUpdate):
		return fmt.Errorf("mtls: OCSP response of %s says good, but a response not older said revoked (replayed?)",
			resp.ThisUpdate.UTC().Format(time.RFC3339))
	}
	return nil
}

// take records the answer of resp in e at now, and when to ask again.
func (o *ocspChecker) take(e *ocspEntry, resp *ocsp.Response, now time.Time) {
	e.has = true
	e.revoked = resp.Status == ocsp.Revoked
	e.revokedAt = resp.RevokedAt
	e.thisUpdate, e.nextUpdate = resp.ThisUpdate, resp.NextUpdate
	if e.nextUpdate.IsZero() {
		e.nextUpdate = resp.ThisUpdate.Add(ocspcheck.NoNextUpdateTTL)
	}
	e.refreshAt = refreshTime(now, e.thisUpdate, e.nextUpdate)
	if o.maxAge > 0 && now.Add(o.maxAge).Before(e.refreshAt) {
		e.refreshAt = now.Add(o.maxAge)
	}
	if !now.Before(e.nextUpdate) {
		// Expired already (within the skew): not worth asking again on every request.
		e.failedUntil = now.Add(retryBackoff)
		e.lastErr = fmt.Errorf("mtls: OCSP: the responder serves an answer that expired at %s",
			e.nextUpdate.UTC().Format(time.RFC3339))
	}
}

// refreshTime is when a new answer should be asked for in the background: at three quarters of
// the answer's validity, and not sooner than a few seconds from now.
func refreshTime(now, thisUpdate, nextUpdate time.Time) time.Time {
	start := thisUpdate
	if start.After(now) {
		start = now
	}
	t := start.Add(nextUpdate.Sub(start) * 3 / 4)
	if min := now.Add(minRefreshDelay); t.Before(min) {
		t = min
	}
	if t.After(nextUpdate) {
		t = nextUpdate
	}
	return t
}

// query sends one OCSP request and returns the verified response.
func (o *ocspChecker) query(ctx context.Context, c, issuer *x509.Certificate, now time.Time) (*ocsp.Response, error) {
	responder := o.responder
	if responder == "" {
		for _, s := range c.OCSPServer {
			if redact.IsHTTP(s) {
				responder = s
				break
			}
		}
	}
	if responder == "" {
		return nil, errors.New("mtls: OCSP: the certificate names no http responder and none is configured")
	}
	reqDER, err := ocsp.CreateRequest(c, issuer, &ocsp.RequestOptions{Hash: crypto.SHA1})
	if err != nil {
		return nil, fmt.Errorf("mtls: OCSP request: %w", err)
	}
	o.queries.Add(1)
	var req *http.Request
	// RFC 6960 A.1 / RFC 5019: GET for requests under 255 bytes once encoded, POST otherwise.
	// Base64 then URL encoding: "+", "/" and "=" are escaped, as responders expect.
	// A responder URL with a query (a token, a signature) takes POST: the request cannot be
	// appended to its path.
	get := strings.TrimSuffix(responder, "/") + "/" + url.QueryEscape(base64.StdEncoding.EncodeToString(reqDER))
	if len(get) < 255 && !strings.ContainsAny(responder, "?#") {
		req, err = http.NewRequestWithContext(ctx, http.MethodGet, get, nil)
	} else {
		req, err = http.NewRequestWithContext(ctx, http.MethodPost, responder, bytes.NewReader(reqDER))
		if err == nil {
			req.Header.Set("Content-Type", "application/ocsp-request")
		}
	}
	if err != nil {
		return nil, fmt.Errorf("mtls: OCSP request to %s: %w", reportedURL(responder), withoutURL(err))
	}
	req.Header.Set("Accept", "application/ocsp-response")
	body, err := o.rv.do(o.rv.client, req, o.maxBytes)
	if err != nil {
		return nil, fmt.Errorf("mtls: OCSP %s: %w", reportedURL(responder), err)
	}
	resp, err := ocspcheck.Verify(body, c, issuer, now, o.rv.skew)
	if err != nil {
		return nil, fmt.Errorf("mtls: OCSP %s: %w", reportedURL(responder), err)
	}
	return resp, nil
}

// do sends req with client and returns the body of a 200 response, refusing
// bodies over limit bytes.
func (rv *revocation) do(client *http.Client, req *http.Request, limit int64) ([]byte, error) {
	resp, err := client.Do(req)
	if err != nil {
		return nil, withoutURL(err) // the caller names the URL as reported
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 4096))
		if resp.StatusCode/100 == 3 {
			return nil, fmt.Errorf("HTTP status %s (redirect not followed)", resp.Status)
		}
		return nil, fmt.Errorf("HTTP status %s", resp.Status)
	}
	if resp.ContentLength > limit {
		return nil, fmt.Errorf("response of %d bytes exceeds the limit of %d", resp.ContentLength, limit)
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, limit+1))
	if err != nil {
		return nil, withoutURL(err)
	}
	if int64(len(body)) > limit {
		return nil, fmt.Errorf("response exceeds the limit of %d bytes", limit)
	}
	return body, nil
}
