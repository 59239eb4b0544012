package mtls

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rsa"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"log/slog"
	"sync"
	"time"
)

// The TLS layer: what [Middleware.TLSConfig] makes of a server's configuration, and the checks
// the handshake runs on the client's certificate before crypto/tls checks the client's signature
// with its key (CertificateVerify, read after VerifyConnection in TLS 1.2 and 1.3 alike).

// TLSOption adjusts [Middleware.TLSConfig].
type TLSOption func(*tlsOptions)

type tlsOptions struct{ rejectAtHandshake, advertiseCAs bool }

// RejectAtHandshake makes the TLS layer also refuse a missing (when required) or invalid client
// certificate during the handshake, through VerifyConnection (which runs on resumed sessions too):
// the whole chain is screened and verified there (revocation, principal mapping and policies are
// left to the request). The client then sees a TLS alert instead of the problem response, and
// public routes on the same listener become unreachable without a certificate; the HTTP check
// still runs, and finds the verification cached. Use it when every route needs a certificate and
// early rejection matters more than a readable error. With header mode ([Config.Header]) a
// connection without a certificate passes the handshake, since a proxy need not present one; a
// certificate that is presented must still verify.
//
// Each refusal at the handshake is reported like a refusal of a request (see
// [Middleware.TLSConfig]).
//
// The check uses the trust of the middleware whose TLSConfig built the configuration, before any
// route is known: where several middlewares with different trust serve one listener (per-route
// trust), do not use it, or certificates meant for the other routes fail the handshake.
func RejectAtHandshake() TLSOption {
	return func(o *tlsOptions) { o.rejectAtHandshake = true }
}

// AdvertiseCAs makes the certificate request name the subjects of the trusted roots
// (tls.Config.ClientCAs), so that clients holding several certificates pick one of the right CA.
// With tls.RequestClientCert (TLSConfig's default) this only advertises them: the handshake
// verifies nothing, the middleware still decides; with a base ClientAuth that verifies, the
// handshake also verifies against them (see [Middleware.TLSConfig]). The names follow
// [Middleware.Reload]: each handshake gets a copy of the config naming the trust in force.
//
// Clients take the names as a filter: Go's crypto/tls and browsers then send only a certificate
// issued under one of them, and none otherwise. So nothing is advertised while the trust holds
// pins ([Config.PinnedSHA256], [Config.PinnedSHA256Files]), whose certificates would be withheld;
// and do not use it where several middlewares with different trust serve one listener (per-route
// trust), or the certificates of the other routes are withheld. Clients of an untrusted CA then
// send no certificate: they are refused with "certificate_required" rather than
// "certificate_untrusted". A ClientCAs of base, or of a configuration base's GetConfigForClient
// returns, is kept as it is, and never follows reloads.
//
// The configs handed to handshakes are built from base, and do not see what [http.Server] adds to
// its TLSConfig when it starts: put the server's certificate in base (Certificates or
// GetCertificate), not in ServeTLS's file arguments, and set base.NextProtos (such as
// []string{"h2", "http/1.1"}) to offer HTTP/2. Without a certificate in base (and without a
// GetConfigForClient of base's), AdvertiseCAs logs a warning and sends no names, rather than
// break every handshake. With a base ClientAuth that verifies, the handshake is always given the
// roots in force (an empty pool for pins alone), never the system's.
func AdvertiseCAs() TLSOption {
	return func(o *tlsOptions) { o.advertiseCAs = true }
}

// TLSConfig returns a copy of base (or a new config when base is nil) that requests client
// certificates, does not accept anything below TLS 1.2, and screens the certificate a client
// presents during the handshake. The TLS layer only requests the certificate; the middleware
// decides in the request, with its own (reloadable) trust, so that a client gets a readable
// refusal. Base's own VerifyConnection is kept (called after the middleware's checks, when they
// pass). [AdvertiseCAs] names the trusted roots in the certificate request; [RejectAtHandshake]
// refuses at the handshake every certificate that does not verify.
//
// Refused at the handshake by default, before crypto/tls checks the client's signature with the
// presented key, are only chains that no client holding a certificate of this service presents,
// and whose signature check could cost the server more than an ordinary handshake:
//
//   - a chain beyond the screening step's bounds (see the package doc): too many certificates,
//     too large ones, RSA keys outside 2048 to 8192 bits or with an even exponent or one outside
//     3 to 65537, repeated candidates of one name;
//   - a chain whose leaf has a key that is slow to check a signature with (RSA above 3072 bits,
//     ECDSA on P-384 or P-521: up to forty times the cost of P-256) and that no CA of the trust
//     in force vouches for: the chain is verified there, as the request would verify it (the
//     outcome is cached for the request), and one refused only for its validity or its usage
//     still passes if its signatures lead up to a configured root valid now (or the leaf is
//     pinned), whatever the validity periods of the presented certificates, so that an expired
//     certificate of the service's CA gets its readable refusal. A forged chain naming the
//     service's CAs then costs at most a check of each presented CA with a configured CA's key,
//     and the forger's expensive key is never used.
//
// A chain within those bounds that is otherwise bad (an unknown CA, expired, revoked, refused by
// a policy) reaches the request, and its readable refusal, unless [RejectAtHandshake]. What is
// refused at the handshake never reaches a handler, so [DangerouslyFallBackOnInvalidCertificate]
// cannot let credentials stand in for it. The checks apply to every TLS connection, trusted
// proxies' ([Config.Header]) included: a proxy trusted by its address that presents a
// certificate of its own with a slow key from a CA outside the trust fails the handshake (see
// [HeaderConfig]). Where several middlewares with different trust serve one listener, a leaf
// with a slow key must be vouched for by the trust of the middleware whose TLSConfig built the
// configuration: build it with a middleware whose trust holds the CAs of every route (its
// handlers need not serve anything).
//
// A base ClientAuth that verifies (tls.VerifyClientCertIfGiven, tls.RequireAndVerifyClientCert)
// is kept in effect but not left to crypto/tls, which would verify the chain before any hook
// with every presented certificate as a candidate intermediate, beyond the screen's bounds: the
// copy gets tls.RequestClientCert or tls.RequireAnyClientCert (a certificate is still required
// where it was), and the handshake's check verifies the chain after the screen, on every
// connection (resumed ones too), as the middleware verifies one (leaf usage clientAuth, validity
// at [Config.Now], depth), against base's ClientCAs (the roots in force with [AdvertiseCAs], the
// system's for nil) with the presented CA certificates as candidates. A chain that does not
// verify is refused like any refusal at the handshake, with a bad_certificate alert where
// crypto/tls would have sent unknown_ca or certificate_expired. Base's VerifyPeerCertificate is
// then called after that verification, with the chain it verified. The request's
// r.TLS.VerifiedChains is empty: the [Identity] holds the verified chain.
//
// Every refusal at the handshake is reported like a refusal of a request: an [Event] with
// Handshake set (Source TLS, no Status), to [Config.OnDecision] with context.Background() and to
// [Config.Logger] under the same rate limits; crypto/tls sends the client a bad_certificate
// alert, and [http.Server] logs the handshake error to its ErrorLog. A handshake that passes is
// not an event: the request's decision is.
//
// A GetConfigForClient of base is kept, and each configuration it returns (one per server name,
// as multi-tenant servers do) gets the same treatment: a copy of it, made for each handshake,
// gets MinVersion, ClientAuth, the checks above before its own VerifyConnection, and the
// advertised CAs; the returned configuration itself is never modified, and what is set on it
// later (such as SetSessionTicketKeys) applies to the handshakes that follow. When base's
// GetConfigForClient returns nil, the handshake uses the config TLSConfig returns, or with
// AdvertiseCAs a copy of it naming the trust in force.
//
// Before any of these checks, crypto/tls itself parses the whole Certificate message a client
// sends, up to 256 KiB: a flood of tiny certificates (some 900 Ed25519 ones) costs about eight
// legit handshakes, whatever this middleware does. Bound the rate of new connections per client
// (in the load balancer or the listener) where that matters.
func (m *Middleware) TLSConfig(base *tls.Config, opts ...TLSOption) *tls.Config {
	h := &handshake{m: m}
	for _, opt := range opts {
		opt(&h.opts)
	}
	cfg := &tls.Config{}
	if base != nil {
		cfg = base.Clone()
	}
	own := cfg.GetConfigForClient
	cfg.GetConfigForClient = nil

	advertise := h.opts.advertiseCAs && cfg.ClientCAs == nil
	if advertise && len(cfg.Certificates) == 0 && cfg.GetCertificate == nil {
		// A config returned by GetConfigForClient replaces the server's whole config, so it
		// would lack the certificate that http.Server.ServeTLS(certFile, keyFile) or httptest
		// add to their own copy later: every handshake would fail.
		advertise = false
		if own == nil {
			m.log(context.Background(), slog.LevelWarn, "mtls: AdvertiseCAs needs the server's certificate in the base config "+
				"(Certificates or GetCertificate): no CA names are sent")
		}
	}
	var t *trust
	if advertise {
		t = m.state.Load().trust
	}
	verifying := h.adjust(cfg, t)
	if !advertise && own == nil {
		return cfg
	}
	out := cfg
	out.GetConfigForClient = func(hello *tls.ClientHelloInfo) (*tls.Config, error) {
		if own != nil {
			c, err := own(hello)
			if err != nil {
				return nil, err
			}
			if c != nil {
				return h.derive(c), nil
			}
		}
		if !advertise {
			return nil, nil
		}
		// A copy per handshake, of the config handed out: what is set on it later (session
		// ticket keys) is seen, and the names are those of the trust in force.
		c := out.Clone()
		c.GetConfigForClient = nil
		c.ClientCAs = nil
		advertiseRoots(c, m.state.Load().trust, verifying)
		return c, nil
	}
	return out
}

// handshake is what one [Middleware.TLSConfig] applies to each configuration a handshake uses:
// its copy of base, and the copies of the configurations base's GetConfigForClient returns.
type handshake struct {
	m    *Middleware
	opts tlsOptions
}

// clientVerify is the verification that a configuration's ClientAuth (VerifyClientCertIfGiven,
// RequireAndVerifyClientCert) asked of crypto/tls. crypto/tls would run it before any hook, with
// every presented certificate as an intermediate, beyond the screen's bounds: the handshake's
// check runs it instead, after the screen, with the middleware's own verification.
type clientVerify struct {
	// anchors holds the configuration's ClientCAs as roots; nil: the roots of the trust in force
	// at the handshake (AdvertiseCAs filled ClientCAs).
	anchors *trust
	// peer is the configuration's VerifyPeerCertificate, which crypto/tls would call with the
	// chains it verified: it is called after the verification, with the chain verified.
	peer func(rawCerts [][]byte, verifiedChains [][]*x509.Certificate) error
}

// trustOf returns the trust the verification uses under st.
func (v *clientVerify) trustOf(st *state) *trust {
	if v.anchors != nil {
		return v.anchors
	}
	roots := st.trust.roots
	if roots == nil {
		roots = x509.NewCertPool() // as advertiseRoots: pins alone verify nothing here
	}
	return &trust{roots: roots, intermediates: noIntermediates, maxDepth: st.trust.maxDepth, allowNoEKU: st.trust.allowNoEKU}
}

// noIntermediates is the empty pool of a clientVerify's trust: crypto/tls configures no
// intermediates. admit never adds to it (it adds to a copy).
var noIntermediates = x509.NewCertPool()

// systemRoots is the system's pool, which crypto/tls verifies against when ClientCAs is nil.
var systemRoots = sync.OnceValue(func() *x509.CertPool {
	if p, err := x509.SystemCertPool(); err == nil && p != nil {
		return p
	}
	return x509.NewCertPool()
})

// adjust makes c, a copy of the handshake's own or of a configuration base's GetConfigForClient
// returned, name the roots of t when t is not nil (AdvertiseCAs), request a certificate, refuse
// versions below TLS 1.2 and check the certificate before its own VerifyConnection. A ClientAuth
// that verifies is lowered to the one that does not (requiring a certificate still where it did),
// and the check verifies instead (clientVerify). It says whether c's ClientAuth verified.
func (h *handshake) adjust(c *tls.Config, t *trust) bool {
	verifying := c.ClientAuth >= tls.VerifyClientCertIfGiven
	var v *clientVerify
	if verifying {
		v = &clientVerify{peer: c.VerifyPeerCertificate}
		c.VerifyPeerCertificate = nil
		switch {
		case t != nil && c.ClientCAs == nil: // the roots in force at each handshake
		case c.ClientCAs == nil:
			v.anchors = &trust{roots: systemRoots(), intermediates: noIntermediates, maxDepth: h.m.trustCfg.maxDepth, allowNoEKU: h.m.trustCfg.allowNoEKU}
		default:
			v.anchors = &trust{roots: c.ClientCAs, intermediates: noIntermediates, maxDepth: h.m.trustCfg.maxDepth, allowNoEKU: h.m.trustCfg.allowNoEKU}
		}
	}
	if t != nil {
		advertiseRoots(c, t, verifying)
	}
	if c.MinVersion < tls.VersionTLS12 {
		c.MinVersion = tls.VersionTLS12
	}
	switch {
	case c.ClientAuth == tls.VerifyClientCertIfGiven:
		c.ClientAuth = tls.RequestClientCert
	case c.ClientAuth == tls.RequireAndVerifyClientCert:
		c.ClientAuth = tls.RequireAnyClientCert
	case c.ClientAuth < tls.RequestClientCert:
		c.ClientAuth = tls.RequestClientCert
	}
	m, reject, own := h.m, h.opts.rejectAtHandshake, c.VerifyConnection
	c.VerifyConnection = func(cs tls.ConnectionState) error {
		chain, err := m.checkHandshake(cs, reject, v)
		if err != nil {
			return err
		}
		if v != nil && v.peer != nil && !cs.DidResume { // crypto/tls calls it on full handshakes only
			raw := make([][]byte, len(cs.PeerCertificates))
			for i, cert := range cs.PeerCertificates {
				raw[i] = cert.Raw
			}
			var chains [][]*x509.Certificate
			if chain != nil {
				chains = [][]*x509.Certificate{chain}
			}
			if err := v.peer(raw, chains); err != nil {
				return err
			}
		}
		if own != nil {
			return own(cs)
		}
		return nil
	}
	return verifying
}

// derive returns the configuration for a handshake that base's GetConfigForClient gave c: an
// adjusted copy, made for this handshake (a copy costs about a microsecond), so that what is set
// on c later, such as its session ticket keys, is seen.
func (h *handshake) derive(c *tls.Config) *tls.Config {
	var t *trust
	if h.opts.advertiseCAs && c.ClientCAs == nil {
		t = h.m.state.Load().trust
	}
	out := c.Clone()
	out.GetConfigForClient = nil // crypto/tls calls only the server's own
	h.adjust(out, t)
	return out
}

// advertiseRoots names the roots of t in c's certificate request ([AdvertiseCAs]); verifying
// says whether the ClientAuth c was given verifies.
func advertiseRoots(c *tls.Config, t *trust, verifying bool) {
	if len(t.pins) == 0 || verifying { // pinned certificates cannot pass a verifying handshake
		c.ClientCAs = t.roots
	}
	if c.ClientCAs == nil && verifying { // crypto/tls would take the system's roots for nil
		c.ClientCAs = x509.NewCertPool()
	}
}

// checkHandshake checks the client's certificate during the handshake (see [Middleware.TLSConfig])
// and reports a refusal; with reject, it refuses what the request would refuse before revocation;
// with v, it verifies as the configuration's ClientAuth asked, and returns the chain verified.
func (m *Middleware) checkHandshake(cs tls.ConnectionState, reject bool, v *clientVerify) ([]*x509.Certificate, error) {
	start := m.clock()
	chain, err := m.handshakeRefusal(cs, reject, v)
	if err != nil {
		m.noteHandshake(err, start)
	}
	return chain, err
}

// handshakeRefusal is the refusal of the handshake's check, or nil and the chain v verified.
func (m *Middleware) handshakeRefusal(cs tls.ConnectionState, reject bool, v *clientVerify) ([]*x509.Certificate, error) {
	certs := cs.PeerCertificates
	if len(certs) == 0 {
		// A trusted proxy need not present a certificate: with header mode, the request decides.
		// (A ClientAuth that requires one is kept: crypto/tls refused before.)
		if !reject || m.optional || m.header != nil {
			return nil, nil
		}
		err := newError(ErrNoCertificate, "no certificate in the TLS handshake", nil)
		setStep(err, stepClaim)
		return nil, err
	}
	if err := m.screen(certs); err != nil {
		return nil, err
	}
	st, now := m.state.Load(), m.now()
	c := &claim{source: SourceTLS, certs: certs}
	switch {
	case reject:
		if _, err := m.verifiedChain(st, c, now); err != nil {
			return nil, err
		}
	// A resumed session's client proves nothing with its key: there is no signature to check.
	case !cs.DidResume && slowKey(certs[0].PublicKey):
		if err := m.vouched(st, c, now); err != nil {
			return nil, err
		}
	}
	if v == nil {
		return nil, nil
	}
	// Also on a resumed session: its ticket may come from a configuration that did not verify.
	chain, _, err := v.trustOf(st).verify(certs, now)
	if e, ok := err.(*Error); ok {
		e.Detail = "by the TLS configuration's ClientCAs: " + e.Detail
		e.Step = stepVerify
	}
	return chain, err
}

// vouched refuses a chain whose leaf has a slow key unless a configured CA vouches for it: it
// verifies (the outcome is cached for the request), or it is refused for its validity or usage
// alone, its signatures leading up to a root ([trust.vouches]). The request then refuses it,
// readably.
func (m *Middleware) vouched(st *state, c *claim, now time.Time) error {
	_, err := m.verifiedChain(st, c, now)
	if err == nil || errors.Is(err, ErrUntrusted) {
		return err
	}
	if st.trust.vouches(c.certs, now) {
		return nil
	}
	e := newError(ErrUntrusted, "no configured CA vouches for the client certificate, whose key is slow to check", err)
	e.Leaf, e.Step = c.certs[0], stepVerify
	return e
}

// slowKey says whether checking a signature with pub costs much more than with the keys most
// clients hold (ECDSA P-256, Ed25519, RSA up to 3072 bits, each a few tens of microseconds):
// RSA-4096 costs about ten times an RSA-2048 check, RSA-8192 fifty, P-384 ten times a P-256
// check, P-521 forty.
func slowKey(pub any) bool {
	switch k := pub.(type) {
	case *rsa.PublicKey:
		return k.N.BitLen() > 3072
	case *ecdsa.PublicKey:
		return k.Curve != elliptic.P256()
	}
	return false
}

// noteHandshake reports err, a refusal at the handshake begun at start, as an event marked
// Handshake: the connection never carries a request, so this is its one decision.
func (m *Middleware) noteHandshake(err error, start time.Time) {
	ctx := context.Background() // a handshake has no request; ConnectionState carries no context
	d := decision{err: err, now: m.now(), source: SourceTLS}
	if m.onDecision == nil && !m.logged(ctx, &d) {
		return
	}
	ev := m.event(&d, nil, since(start))
	ev.Handshake, ev.Status = true, 0
	m.report(ctx, &ev)
}
