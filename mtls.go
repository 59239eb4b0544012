// Package mtls authenticates the clients of a net/http service by their X.509 client certificate
// (mutual TLS), whether TLS ends in the process itself or at a proxy in front of it.
//
// A [Middleware] takes the certificate chain a client presented, on the TLS connection or in a
// trusted proxy's header, verifies it against the service's own trust (CA roots, or leaf
// certificates pinned by fingerprint), optionally checks revocation and policies, and places the
// resulting [Identity] in the request context. Requests without an acceptable certificate are
// refused with a small application/problem+json body carrying a stable reason code; the full reason
// goes to the logger and the error hook, never to the client.
//
//	m, err := mtls.New(mtls.Config{RootCAFiles: []string{"clients-ca.pem"}})
//	if err != nil {
//		log.Fatal(err)
//	}
//	mux := http.NewServeMux()
//	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
//		id, _ := mtls.FromContext(r.Context())
//		fmt.Fprintf(w, "hello %s\n", id.Leaf.Subject.CommonName)
//	})
//	srv := &http.Server{Addr: ":8443", Handler: m.Handler(mux), TLSConfig: m.TLSConfig(nil)}
//	log.Fatal(srv.ListenAndServeTLS("server.pem", "server-key.pem"))
//
// # The pipeline
//
// Every request goes the same way, one step per file:
//
//   - source: the TLS connection, or the header of a proxy the configuration trusts
//     ([Config.Header], header.go); from any other peer such headers are removed and ignored;
//   - cache: an outcome for the very same chain (or header values) is reused (cache.go);
//   - parse and verify: chain to a trust anchor or a pin, clientAuth usage, validity, depth
//     (verify.go);
//   - revocation: OCSP, CRLs and a local deny list, hard-fail by default ([Config.Revocation],
//     revocation.go);
//   - principal and policy: who the certificate stands for, and whether it may proceed
//     ([Config.Principals], [Config.Policy], policy.go); per route with [Middleware.Require];
//   - identity: placed in the context for the next handler ([FromContext]); refusals go to
//     [Config.ErrorHandler].
//
// # Where the decision is made
//
// The TLS layer only requests the certificate ([Middleware.TLSConfig]); the decision is made by the
// middleware in the HTTP request, so that clients get a readable error instead of a failed
// handshake and so that trust can be reloaded at run time ([Middleware.ReloadTrust]) without
// restarting the listener. [RejectAtHandshake] additionally refuses bad certificates during the
// handshake.
//
// # Security model
//
// Verified: the chain leads to a configured root (client-presented intermediates, and a proxy's
// forwarded chain, are only candidates), or the leaf is pinned; the leaf carries the clientAuth
// extended key usage and is not a CA; every certificate of the chain is within its validity period
// at [Config.Now]; the chain is no deeper than [Config.MaxChainDepth]. A forwarded certificate is
// believed only from a trusted proxy, and is verified like a direct one unless
// [HeaderConfig.DangerouslyTrustProxyVerification] says otherwise. Revocation is checked when
// configured, and "could not check" refuses unless [RevocationConfig.DangerouslyFailOpen] is set.
// Who may call what is up to the policies you configure.
package mtls

import (
	"context"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"sync"
	"sync/atomic"
	"time"

	"github.com/certgate/mtls/internal/spiffeid"
)

// Source says where a verified certificate came from.
type Source string

const (
	// SourceTLS: the client presented the certificate on the TLS connection to this process.
	SourceTLS Source = "tls"
	// SourceHeader: a trusted proxy terminated TLS and forwarded the certificate in a header.
	SourceHeader Source = "header"
)

// Identity is a verified client. Handlers read it with [FromContext]. It is shared between
// requests that present the same chain: treat it as read-only.
type Identity struct {
	// Source is where the certificate came from.
	Source Source
	// Format is the header format for SourceHeader (such as "nginx"), empty for SourceTLS.
	Format string
	// Proxy is the address of the proxy that forwarded the certificate, for SourceHeader.
	Proxy netip.Addr

	// Leaf is the client certificate.
	Leaf *x509.Certificate
	// Chain is the verified chain, leaf first and trust anchor last. For a pinned leaf, and for a
	// certificate accepted on a proxy's word (HeaderConfig.DangerouslyTrustProxyVerification), it
	// holds the leaf alone.
	Chain []*x509.Certificate
	// Pinned is true when the leaf was accepted by its pinned fingerprint rather than by a chain
	// to a root.
	Pinned bool

	// SHA256 is the lowercase hex SHA-256 fingerprint of the leaf's DER encoding.
	SHA256 string
	// X5tS256 is the same digest in base64url without padding: the RFC 8705 "x5t#S256"
	// confirmation value of certificate-bound access tokens.
	X5tS256 string

	// Subject alternative names of the leaf.
	DNSNames       []string
	EmailAddresses []string
	URIs           []*url.URL
	IPAddresses    []net.IP
	// SPIFFEID is the leaf's SPIFFE ID ("spiffe://trust-domain/path") when it has exactly one
	// URI SAN and that URI is a well-formed SPIFFE ID; empty otherwise.
	SPIFFEID string

	// Principal is the account the certificate stands for, when a principal mapping resolved one.
	Principal string

	// Revocation is the zero value when revocation passed on fresh answers or is not checked,
	// and says so when the request was accepted on a stale answer or without one (see
	// [RevocationConfig]).
	Revocation RevocationStatus

	sum [sha256.Size]byte
}

// NotAfter is the end of the leaf's validity.
func (id *Identity) NotAfter() time.Time { return id.Leaf.NotAfter }

// newIdentity builds the identity of a verified chain.
func newIdentity(chain []*x509.Certificate, pinned bool) *Identity {
	leaf := chain[0]
	sum := sha256.Sum256(leaf.Raw)
	return &Identity{
		Source:         SourceTLS,
		Leaf:           leaf,
		Chain:          chain,
		Pinned:         pinned,
		SHA256:         hex.EncodeToString(sum[:]),
		X5tS256:        base64.RawURLEncoding.EncodeToString(sum[:]),
		DNSNames:       leaf.DNSNames,
		EmailAddresses: leaf.EmailAddresses,
		URIs:           leaf.URIs,
		IPAddresses:    leaf.IPAddresses,
		SPIFFEID:       spiffeID(leaf.URIs),
		sum:            sum,
	}
}

// spiffeID returns the SPIFFE ID of a leaf per the X509-SVID rules: exactly one URI SAN, and
// that URI a SPIFFE ID as [spiffeid.Validate] defines it (the validator the SPIFFE matchers use).
func spiffeID(uris []*url.URL) string {
	if len(uris) != 1 || uris[0] == nil {
		return ""
	}
	s := uris[0].String()
	if spiffeid.Validate(s) != nil {
		return ""
	}
	return s
}

type ctxKey struct{}

// NewContext returns a copy of ctx carrying id. Handlers' tests use it to fake an authenticated
// request.
func NewContext(ctx context.Context, id *Identity) context.Context {
	return context.WithValue(ctx, ctxKey{}, id)
}

// FromContext returns the identity the middleware placed in ctx. ok is false when the request
// went on without a certificate (optional mode) or did not pass through the middleware.
func FromContext(ctx context.Context) (id *Identity, ok bool) {
	id, ok = ctx.Value(ctxKey{}).(*Identity)
	return id, ok && id != nil
}

// Config configures a [Middleware]. The zero value of every field is its safe default; at least one
// trust anchor ([Config.RootCAs], [Config.RootCAFiles] or [Config.PinnedSHA256]) is required.
// [New] copies what it needs: changing a Config after New has no effect.
type Config struct {
	// RootCAs are the CAs whose (direct or indirect) client certificates are accepted.
	RootCAs *x509.CertPool
	// RootCAFiles are PEM files of further root CAs. They are read by New and again by
	// [Middleware.ReloadTrust]. A v3 certificate that is not a CA is refused here: pin such a
	// certificate with PinnedSHA256 instead.
	RootCAFiles []string
	// Intermediates are extra intermediate CAs used to build chains, for clients that present
	// their leaf alone. They are not trust anchors.
	Intermediates *x509.CertPool
	// IntermediateFiles are PEM files of further intermediates, read like RootCAFiles.
	IntermediateFiles []string
	// PinnedSHA256 accepts individual leaf certificates by the SHA-256 fingerprint of their DER
	// (hex; case, colons and spaces ignored), whoever issued them: the way to register a partner's
	// self-signed client certificate. A pinned leaf must still be within its validity period, carry
	// the clientAuth extended key usage and not be a CA.
	PinnedSHA256 []string
	// MaxChainDepth is the greatest number of CA certificates (intermediates and root) allowed above
	// the leaf in a verified chain, and bounds how many certificates a client may present (this
	// number plus one). Default 4.
	MaxChainDepth int

	// Optional lets requests without a client certificate through without an identity (handlers
	// see FromContext return false). A certificate that is presented and invalid is still refused.
	// Default false: a certificate is required.
	Optional bool

	// Now is the clock used for validity checks. Default time.Now.
	Now func() time.Time

	// CacheSize bounds the number of verification outcomes kept, rounded up to a power of two.
	// Outcomes are keyed by the whole presented chain (or the raw header values), confirmed byte
	// for byte on every hit, and never outlive the earliest NotAfter of the chain; refusals are
	// kept a minute and make room first. Default 4096; a negative value turns the cache off.
	CacheSize int

	// ErrorHandler writes refusals. It receives an *Error (see [StatusAndReason]). Default
	// [WriteError]. It must not send the error's text to the client.
	ErrorHandler func(w http.ResponseWriter, r *http.Request, err error)
	// Logger receives one record per refusal with the full reason. Default: no logging.
	Logger *slog.Logger

	// Header turns on header mode: the certificate is also accepted from a trusted proxy's
	// header (see [HeaderConfig] for the trust model and which source wins). Default nil: only
	// the TLS connection counts, and certificate headers are not looked at.
	Header *HeaderConfig

	// Revocation turns on revocation checking by OCSP, CRLs and a local deny list, on every
	// request after the chain is verified (see [RevocationConfig]: it fails closed by default).
	// Default nil: revocation is not checked.
	Revocation *RevocationConfig

	// Policy decides, after verification (and revocation), which identities may use any route
	// (see [Policy]; [Middleware.Require] adds per-route policies). A refusal is 403
	// "policy_denied"; the rule that refused goes to the error handler and the logger only.
	// Requests without a certificate in Optional mode are not subject to it. Default nil: every
	// verified identity is allowed.
	Policy Policy
	// ShadowPolicy is evaluated beside Policy as a dry run and never refuses anything: its
	// outcome goes to OnShadow for every evaluated request, and to the logger (level Info) when it
	// would deny, or would allow a request that Policy denies. Use it to tighten rules safely.
	// Default nil.
	ShadowPolicy Policy
	// OnShadow receives each ShadowPolicy outcome (and those of [Middleware.Shadow]), for
	// metrics. It runs in the request path and must be fast and safe for concurrent use. Default
	// nil.
	OnShadow func(r *http.Request, res ShadowResult)
	// Principals maps each verified identity to the account it stands for and sets
	// [Identity.Principal] on a per-request copy of the identity, before Policy runs (so that
	// policies can match the principal). An error from it refuses the request with 403. Default
	// nil: Principal stays empty.
	Principals PrincipalResolver
}

// Middleware authenticates requests by client certificate. It is safe for concurrent use.
type Middleware struct {
	optional     bool
	now          func() time.Time
	cacheSize    int
	errorHandler func(http.ResponseWriter, *http.Request, error)
	logger       *slog.Logger

	trustCfg trustConfig
	header   *headerSource         // nil: header mode off
	revoc    *revocation           // nil: revocation not checked
	policies policyRuntime         // Policy, ShadowPolicy, OnShadow, Principals
	reloadMu sync.Mutex            // serialises ReloadTrust
	state    atomic.Pointer[state] // trust and the cache of outcomes under that trust
}

// state is what a trust change replaces at once: the trust and the outcomes verified under it.
type state struct {
	trust *trust
	cache *cache
}

const (
	defaultMaxChainDepth = 4
	defaultCacheSize     = 4096
)

// New validates cfg and returns a Middleware. It reports every problem of the configuration at
// once.
func New(cfg Config) (*Middleware, error) {
	m := &Middleware{
		optional:     cfg.Optional,
		now:          cfg.Now,
		cacheSize:    cfg.CacheSize,
		errorHandler: cfg.ErrorHandler,
		logger:       cfg.Logger,
	}
	if m.now == nil {
		m.now = time.Now
	}
	if m.cacheSize == 0 {
		m.cacheSize = defaultCacheSize
	}
	if m.errorHandler == nil {
		m.errorHandler = WriteError
	}
	var errs []error
	if cfg.MaxChainDepth < 0 {
		errs = append(errs, fmt.Errorf("mtls: MaxChainDepth %d is negative", cfg.MaxChainDepth))
	}
	m.trustCfg = trustConfig{
		roots:             cfg.RootCAs,
		rootFiles:         append([]string(nil), cfg.RootCAFiles...),
		intermediates:     cfg.Intermediates,
		intermediateFiles: append([]string(nil), cfg.IntermediateFiles...),
		pins:              append([]string(nil), cfg.PinnedSHA256...),
		maxDepth:          cfg.MaxChainDepth,
	}
	if m.trustCfg.maxDepth == 0 {
		m.trustCfg.maxDepth = defaultMaxChainDepth
	}
	t, err := m.trustCfg.load()
	if err != nil {
		errs = append(errs, err)
	}
	if cfg.Header != nil {
		var herrs []error
		m.header, herrs = newHeaderSource(cfg.Header)
		errs = append(errs, herrs...)
	}
	if cfg.Revocation != nil {
		m.revoc, err = newRevocation(cfg.Revocation, m.now, m.logger)
		if err != nil {
			errs = append(errs, err)
		}
	}
	if cfg.Header != nil && cfg.Header.DangerouslyTrustProxyVerification && cfg.Revocation != nil {
		// Revocation answers are verified with the issuer of a verified chain; a chain the proxy
		// vouched for was never verified here, so a client could choose the issuer.
		errs = append(errs, errors.New("mtls: Revocation cannot be combined with HeaderConfig.DangerouslyTrustProxyVerification: revocation needs chains verified by the middleware"))
	}
	var perrs []error
	m.policies, perrs = newPolicyRuntime(&cfg)
	errs = append(errs, perrs...)
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	m.state.Store(&state{trust: t, cache: newCache(m.cacheSize)})
	return m, nil
}

// ReloadTrust reads RootCAFiles and IntermediateFiles again and, if they are valid, swaps the trust
// in atomically and forgets every cached outcome. If they are not, the trust in force stays and
// the error says why. Call it on SIGHUP or when the files change.
func (m *Middleware) ReloadTrust() error {
	m.reloadMu.Lock()
	defer m.reloadMu.Unlock()
	t, err := m.trustCfg.load()
	if err != nil {
		m.log(context.Background(), slog.LevelError, "mtls: trust reload failed, keeping the trust in force", slog.Any("error", err))
		return err
	}
	m.state.Store(&state{trust: t, cache: newCache(m.cacheSize)})
	return nil
}

// Handler returns a handler that authenticates each request and calls next with the identity in
// the request context, or refuses the request through the error handler. It fits chi's
// r.Use(m.Handler).
func (m *Middleware) Handler(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		id, err := m.authenticate(r, true)
		if err != nil {
			m.refuse(w, r, err)
			return
		}
		r = m.stripHeader(r, id)
		if id == nil {
			next.ServeHTTP(w, r)
			return
		}
		next.ServeHTTP(w, r.WithContext(NewContext(r.Context(), id)))
	})
}

// Authenticate runs the whole check on r and returns the identity, or an *Error. It writes no
// response and reports nothing about the request: no refusal record, no shadow-policy report.
// (Revocation checking may still query responders and, at most every 30 seconds, warn that answers
// are stale.) In optional mode a request without a certificate yields (nil, nil).
func (m *Middleware) Authenticate(r *http.Request) (*Identity, error) {
	return m.authenticate(r, false)
}

// authenticate is the pipeline: source -> cache -> verify -> the steps after verification.
//
// report is true when serving a request through Handler: only then are per-request outcomes
// reported (the shadow policy); Authenticate reports nothing.
func (m *Middleware) authenticate(r *http.Request, report bool) (*Identity, error) {
	id, err := m.identify(r)
	if err != nil || id == nil {
		return id, err
	}
	return m.afterVerify(r, id, report)
}

// identify finds the presented chain and verifies it (through the cache). It returns (nil, nil)
// when no certificate was presented and none is required.
func (m *Middleware) identify(r *http.Request) (*Identity, error) {
	if m.header != nil {
		if proxy, ok := m.trustedPeer(r); ok {
			return m.identifyHeader(r, proxy)
		}
	}
	var presented []*x509.Certificate
	if r.TLS != nil {
		presented = r.TLS.PeerCertificates
	}
	if len(presented) == 0 {
		if m.optional {
			return nil, nil
		}
		detail := "no certificate on the TLS connection"
		switch {
		case r.TLS == nil && m.header != nil:
			detail = "no TLS connection, and the peer is not a trusted proxy"
		case r.TLS == nil:
			detail = "no TLS connection"
		case m.header != nil:
			detail += ", and the peer is not a trusted proxy"
		}
		return nil, newError(ErrNoCertificate, detail, nil)
	}
	return m.verifyChain(presented)
}

// afterVerify runs the checks that follow chain verification on every request, each with its own
// fast path: revocation, then principal mapping and policy (enforce, in policy.go).
func (m *Middleware) afterVerify(r *http.Request, id *Identity, report bool) (*Identity, error) {
	if m.revoc != nil {
		var err error
		if id, err = m.revoc.check(r.Context(), id); err != nil {
			return nil, err
		}
	}
	return m.enforce(r, id, report)
}

// verifyChain answers from the cache or verifies presented under the trust in force.
func (m *Middleware) verifyChain(presented []*x509.Certificate) (*Identity, error) {
	st := m.state.Load()
	now := m.now()
	k, e := st.cache.lookupChain(presented, now)
	if e != nil {
		return e.id, e.err
	}
	return st.cache.fill(k, chainMaterial(presented), now, func() (*Identity, time.Time, error) {
		chain, pinned, err := st.trust.verify(presented, now)
		if err != nil {
			return nil, negativeExpiry(presented[0], err, now), err
		}
		return newIdentity(chain, pinned), earliestNotAfter(chain), nil
	})
}

// refuse logs err and hands it to the error handler.
func (m *Middleware) refuse(w http.ResponseWriter, r *http.Request, err error) {
	if m.logger != nil {
		status, reason := StatusAndReason(err)
		attrs := []slog.Attr{
			slog.Int("status", status),
			slog.String("reason", reason),
			slog.String("remote", r.RemoteAddr),
			slog.String("error", err.Error()),
		}
		var e *Error
		if errors.As(err, &e) && e.Leaf != nil {
			attrs = append(attrs, slog.String("subject", e.Leaf.Subject.String()),
				slog.String("issuer", e.Leaf.Issuer.String()))
		}
		m.logger.LogAttrs(r.Context(), slog.LevelInfo, "mtls: request refused", attrs...)
	}
	m.errorHandler(w, r, err)
}

func (m *Middleware) log(ctx context.Context, level slog.Level, msg string, attrs ...slog.Attr) {
	if m.logger != nil {
		m.logger.LogAttrs(ctx, level, msg, attrs...)
	}
}
