package mtls

import (
	"bytes"
	"context"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"
	"net/netip"
	"slices"
	"time"
)

// The pipeline. Every request, and every proxy trusted by its certificate, takes the same steps,
// each in one place:
//
//	claim       what the request presents, and which source speaks for it   claim.go
//	refusals    a claim refused too often is answered 429 (RefusalThrottle)  refusals.go
//	screen      number, sizes and keys of what was presented, before any    screen.go, screenClaim,
//	            signature; a refusal is not cached                          screenDER, screen
//	cache       the outcome for the very same material                      cache.go
//	parse       header values -> DER -> certificates (header mode)          decodeHeader,
//	                                                                        parseCertificates
//	verify      chain to an anchor or a pin                                 verify.go
//	revocation  deny list, OCSP, CRLs                                       revocation*.go
//	principal   who the certificate stands for                              principal.go
//	policy      whether it may proceed                                      authorize
//	identity    into the request context, or a refusal; every decision      Handler, observe.go
//	            to the observer
//
// The pipeline runs on a Call (call.go): the net/http handlers build one from each request, on
// the stack; Decide takes one from any other transport.

// decision is the outcome of the pipeline for one request.
type decision struct {
	id  *Identity // nil: refused (err set), or no certificate in optional mode
	err error
	// evaluated is the identity the policy judged and enforced its verdict; the shadow policy, if
	// any, is judged against it when the decision is observed.
	evaluated *Identity
	enforced  error

	st *state // the state the pipeline ran under; route policies judge under it too

	// What the observer reports beside the outcome.
	now    time.Time
	source Source
	proxy  netip.Addr
	rev    revInfo
	// For [Middleware.Either] and [Middleware.Both]: the principal the credential check
	// returned, and the refusal of a certificate that the credentials stood in for.
	credentials string
	certErr     error
	tier        string // the throttling tier applied (throttle.go)
	// slowed is the SHA-256 (hex) of the leaf's DER a claim was answered 429 too_many_refusals
	// for (refusals.go): the event's SHA256, also when no leaf was parsed (from a proxy).
	slowed string
}

// authenticate runs the pipeline on r.
func (m *Middleware) authenticate(r *http.Request) decision {
	c := callOf(r)
	return m.decide(&c)
}

// decide runs the pipeline on c.
// The state is loaded once: every step of one call sees the same trust, policy, bindings and
// deny list file, whatever reload happens meanwhile.
func (m *Middleware) decide(c *Call) decision {
	st := m.state.Load()
	var cl claim
	d := decision{st: st, now: m.now()}
	d.err = m.claimOf(st, c, &cl)
	d.source, d.proxy = cl.source, cl.proxy
	if d.err != nil {
		setStep(d.err, stepClaim)
		return d
	}
	var id *Identity
	if !cl.empty() {
		var ck claimKey // the claim's key among refusals, computed once if at all
		if d.err = m.slowed(st, &cl, &ck, d.now); d.err != nil {
			if ck.key.kind == refusalKeyLeaf {
				d.slowed = hex.EncodeToString(ck.sum[:]) // the leaf's, parsed or not
			}
			return d
		}
		if id, d.rev, d.err = m.verified(c.ctx(), st, &cl, d.now); d.err != nil {
			m.countRefusal(st, &cl, &ck, d.err, d.now)
			return d
		}
	}
	if id == nil { // nothing presented, or header values that say "no certificate"
		switch {
		case !m.optional:
			d.err = newError(ErrNoCertificate, "the trusted proxy forwarded no certificate", nil)
		case c.Policy != nil: // as a route's Require refuses a request without an identity
			d.err = newError(ErrNoCertificate, "the call's policy requires a client certificate", nil)
		}
		setStep(d.err, stepClaim)
		return d
	}
	if soon := m.expiresSoon(id.Leaf, d.now); id.Proxy != cl.proxy || soon {
		// The cached identity is shared, and holds the proxy that first forwarded it: Proxy and
		// ExpiresSoon are per call.
		cp := *id
		cp.Proxy, cp.ExpiresSoon = cl.proxy, soon
		id = &cp
	}
	var callPolicy Policy
	if c.Policy != nil {
		callPolicy = m.callPolicyOf(c, st)
	}
	m.authorizeWith(&d, st, id, callPolicy)
	return d
}

// verified runs the steps that establish a certificate under st: screen, cache, parse, verify,
// revocation. It returns (nil, nil) for header values that decode to no certificate.
func (m *Middleware) verified(ctx context.Context, st *state, c *claim, now time.Time) (*Identity, revInfo, error) {
	id, err := m.verifiedChain(st, c, now)
	if err != nil || id == nil || m.revoc == nil {
		return id, revInfo{}, err
	}
	id, info, err := m.revoc.check(ctx, st.deny, id)
	setStep(err, stepRevocation)
	return id, info, err
}

// verifiedChain runs screen, cache, parse and verify: all but revocation, which has caches of its
// own and runs on every request.
func (m *Middleware) verifiedChain(st *state, c *claim, now time.Time) (*Identity, error) {
	if err := m.screenClaim(c); err != nil {
		return nil, err
	}
	var k uint64
	var e *entry
	var material string
	var match func(*entry) bool
	var chainOf func(*Identity) [][]byte
	if c.source == SourceHeader {
		if k, e = st.cache.lookupValues(c.headerValues(), now); e == nil {
			material, match = valuesMaterial(c.headerValues()), matchValues(c.headerValues())
		}
	} else {
		if certs := distinctCerts(c.certs); len(certs) < len(c.certs) {
			d := *c
			d.certs = certs
			c = &d
		}
		if k, e = st.cache.lookupChain(c.certs, now); e == nil {
			material, match, chainOf = chainMaterial(c.certs), matchChain(c.certs), presentedChain(c.certs)
		}
	}
	if e != nil {
		return e.id, e.err
	}
	own := *c // the flight may outlive this request: it gets its own copy
	return st.cache.fill(k, material, match, chainOf, now, func() (*Identity, time.Time, bool, error) {
		return m.verifyClaim(st, &own, now)
	})
}

// distinctCerts returns presented without the certificates that repeat an earlier one (the
// leaf included), or presented itself when none does. A second copy adds no path, and would make
// each multiset of one chain an entry of its own; clients that send one (a bundle that lists an
// intermediate twice) are not refused for it. Its cost, before the cache, is a comparison of
// each pair of at most maxPresented certificates.
func distinctCerts(presented []*x509.Certificate) []*x509.Certificate {
	var out []*x509.Certificate
	for i, c := range presented {
		dup := slices.ContainsFunc(presented[:i], func(p *x509.Certificate) bool { return p == c || bytes.Equal(p.Raw, c.Raw) })
		switch {
		case dup && out == nil:
			out = slices.Clone(presented[:i])
		case !dup && out != nil:
			out = append(out, c)
		}
	}
	if out == nil {
		return presented
	}
	return out
}

// screenClaim bounds what a claim may make the later steps do, before the cache: a TLS claim
// with too many or too large certificates costs no more than counting, and takes no room in the
// cache. (The header bytes were bounded when they were read.)
func (m *Middleware) screenClaim(c *claim) error {
	if len(c.certs) > m.maxPresented() {
		return m.screen(c.certs)
	}
	for i, cert := range c.certs {
		if len(cert.Raw) > defaultScreenLimits.maxDER || i > 0 && len(cert.Raw) > defaultScreenLimits.maxCADER {
			return m.screen(c.certs)
		}
	}
	return nil
}

// screenDER screens decoded certificates before they are parsed: their number, sizes and
// extension counts.
func (m *Middleware) screenDER(ders [][]byte) error {
	detail := ""
	if n, max := len(ders), m.maxPresented(); n > max {
		detail = fmt.Sprintf("%d certificates forwarded, at most %d allowed", n, max)
	} else {
		for i, der := range ders {
			if d := screenDER(der, i, defaultScreenLimits); d != "" {
				detail = fmt.Sprintf("forwarded certificate %d: %s", i+1, d)
				break
			}
		}
	}
	if detail == "" {
		return nil
	}
	e := newError(ErrUntrusted, detail, nil)
	e.Step = stepScreen
	return e
}

// screen is the screening step: the number of certificates presented, and what each may hold
// (screen.go), before any signature is checked. A refusal is ErrUntrusted with the bound in the
// detail.
func (m *Middleware) screen(certs []*x509.Certificate) error {
	detail := ""
	if n, max := len(certs), m.maxPresented(); n > max {
		detail = fmt.Sprintf("%d certificates presented, at most %d allowed", n, max)
	} else {
		detail = screen(certs, defaultScreenLimits)
	}
	if detail == "" {
		return nil
	}
	e := newError(ErrUntrusted, detail, nil)
	e.Leaf, e.Step = certs[0], stepScreen
	return e
}

// maxPresented bounds how many certificates a client may present: a chain of the longest depth
// allowed, and up to presentedSurplus more that chain building may try and leave unused.
func (m *Middleware) maxPresented() int { return m.trustCfg.maxDepth + 1 + presentedSurplus }

// presentedSurplus is how many certificates a client may present beyond the longest chain
// allowed ([Config.MaxChainDepth]): the cross-signed copies and other certificates of its CAs
// that clients send for a path they do not know will be taken. Each is screened, and tried at
// most as often as an intermediate of the chain.
const presentedSurplus = 4

// verifyClaim parses and verifies a claim under the trust of st: the work the cache saves. It
// returns the identity or the refusal, until when that outcome may be reused (zero: not
// cached), and whether an acceptance is loose (see entry.loose).
func (m *Middleware) verifyClaim(st *state, c *claim, now time.Time) (*Identity, time.Time, bool, error) {
	t := st.trust
	certs := c.certs
	var forwardedBy []XFCCElement // header mode with HeaderConfig.XFCCBy: the earlier hops
	if c.source == SourceHeader {
		ders, hops, err := m.decodeHeader(c)
		forwardedBy = hops
		setStep(err, stepParse)
		if err != nil || len(ders) == 0 {
			return nil, now.Add(negativeTTL), false, err
		}
		if err := m.screenDER(ders); err != nil {
			return nil, time.Time{}, false, err // before parsing, whose cost grows with what is screened
		}
		if certs, err = m.parseCertificates(ders); err != nil {
			setStep(err, stepParse)
			return nil, now.Add(negativeTTL), false, err
		}
	}
	if err := m.screen(certs); err != nil {
		return nil, time.Time{}, false, err // not cached: screening costs less than a look-up's room
	}
	var chain []*x509.Certificate
	pinned, vouched := false, false
	var err error
	if c.source == SourceHeader && m.header.trustProxy {
		chain, err = t.checkForwarded(certs, now)
	} else {
		chain, pinned, vouched, err = t.verifyPresented(certs, now)
	}
	if err != nil {
		setStep(err, stepVerify)
		return nil, negativeExpiry(certs[0], err, now), false, err
	}
	until, loose := earliestNotAfter(chain), false
	switch {
	case c.source == SourceHeader && m.header.trustProxy:
	case !vouched && c.source == SourceHeader:
		// Presented certificates that neither the chain uses nor a root vouches for would make
		// every variation of them a new acceptance, each holding them in the cache for the
		// chain's lifetime. Certificates that verify up to a root are only the PKI's own, a few
		// per name: a client can vary them into no more than a few entries. Header values are
		// cached as they are, so each variation would be an entry of its own: not cached.
		until = time.Time{}
	case !vouched:
		// A presented chain is cached as its leaf's one loose entry (see entry.loose).
		loose = true
	case c.source == SourceHeader && !inPathOrder(chain, certs):
		// Header values are cached as they are, before they are decoded: each order of the
		// same certificates would be an entry of its own. Only the order of the path is cached.
		until = time.Time{}
	}
	if !until.IsZero() {
		chain = st.cache.compact(chain) // to be cached: keep no more than it needs
	}
	id := newIdentity(chain, pinned)
	id.bindings = st.bindings // principals resolve with the bindings loaded with this trust
	if c.source == SourceHeader {
		id.Source = SourceHeader
		id.Format = m.header.formatName
		id.Proxy = c.proxy
		id.forwardedBy = forwardedBy
	}
	return id, until, loose, nil
}

// inPathOrder says whether presented is the start of the verified chain, in its order: the leaf,
// and as many of the CAs above it as the client sent.
func inPathOrder(chain, presented []*x509.Certificate) bool {
	if len(presented) > len(chain) {
		return false
	}
	for i, p := range presented {
		if !bytes.Equal(p.Raw, chain[i].Raw) {
			return false
		}
	}
	return true
}

// decodeHeader returns the DER certificates of a proxy's header values (none when the values
// say the client sent no certificate), and with HeaderConfig.XFCCBy the elements of the earlier
// hops. A refusal of a preset's says so when a value looks like another format's.
func (m *Middleware) decodeHeader(c *claim) ([][]byte, []XFCCElement, error) {
	h := m.header
	var ders [][]byte
	var hops []XFCCElement
	var err error
	if h.xfccBy != nil {
		// compileHeader saw to it that the format reads hops.
		ders, hops, err = baseFormat(h.format).(hopsDecoder).decodeHops(c.headerValues(), h.xfccBy)
	} else {
		ders, err = h.format.Decode(c.headerValues())
	}
	if err == nil {
		return ders, hops, nil
	}
	var e *Error
	if !errors.As(err, &e) { // every refusal is an *Error, whatever a custom format returns
		return nil, nil, newError(ErrMalformedHeader, h.formatName, err)
	}
	if hint := formatMismatch(h.format, h.names, c.headerValues()); hint != "" && e.Detail == h.formatName {
		e.Detail = hint // a preset's refusal, its own: the detail was the format's name
	}
	return ders, hops, err
}

// parseCertificates parses the decoded certificates of a header claim.
func (m *Middleware) parseCertificates(ders [][]byte) ([]*x509.Certificate, error) {
	certs := make([]*x509.Certificate, len(ders))
	for i, der := range ders {
		var err error
		if certs[i], err = x509.ParseCertificate(der); err != nil {
			return nil, newError(ErrMalformedHeader, fmt.Sprintf("%s: certificate %d does not parse", m.header.formatName, i+1), err)
		}
	}
	return certs, nil
}

// authorize runs the steps after the certificate is established: principal mapping, then the
// policy of st (which may match the principal), then the throttling tiers, and records the
// outcome in d. It never mutates id: setting a principal copies it.
func (m *Middleware) authorize(d *decision, st *state, id *Identity) { m.authorizeWith(d, st, id, nil) }

// authorizeWith is authorize with the policy of a call (nil: none), judged after the policy of
// st and before the throttling tiers.
func (m *Middleware) authorizeWith(d *decision, st *state, id *Identity, callPolicy Policy) {
	pr := &m.policies
	if pr.principals != nil {
		name, err := pr.principals.ResolvePrincipal(id)
		if err != nil {
			d.err = deniedError(id, "principal mapping", err)
			setStep(d.err, stepPrincipal)
			return
		}
		if name != "" && name != id.Principal {
			c := *id
			c.Principal = name
			id = &c
		}
	}
	d.evaluated = id
	if st.policy != nil {
		if d.enforced = st.policy.Check(id); d.enforced != nil {
			d.err = deniedError(id, "", d.enforced)
			setStep(d.err, stepPolicy)
			return
		}
	}
	if callPolicy != nil {
		// The shadow policy is judged against the enforced Config.Policy alone (d.enforced), as
		// for a route's Require: the call's policy is the method's own rule.
		if err := callPolicy.Check(id); err != nil {
			d.err = deniedError(id, "", err)
			setStep(d.err, stepPolicy)
			return
		}
	}
	d.id = id
	if m.throttle != nil {
		m.throttleStep(d, st)
	}
}
