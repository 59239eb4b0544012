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
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"sync"
	"sync/atomic"
	"time"
)

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

	// DangerouslyAllowHostMismatch lets a request authenticated on its TLS connection name
	// another server in its Host header than the one its client named in the handshake (SNI).
	// By default such a request is refused with 421 "misdirected_request", as Caddy does when
	// client authentication is on: where several virtual hosts share a listener with different
	// TLS settings ([tls.Config.GetConfigForClient]) or different middlewares, a client could
	// otherwise authenticate against a lenient host and send its requests to a strict one. A
	// connection without SNI (a client that connected by address) must then use an address as
	// Host. HTTP/2 clients that reuse a connection for another host retry on a new connection
	// when they get 421. Default false.
	DangerouslyAllowHostMismatch bool

	// CacheSize bounds the number of verification outcomes kept, rounded up to a power of two.
	// Outcomes are keyed by the whole presented chain (or the raw header values), confirmed byte
	// for byte on every hit, and never outlive the earliest NotAfter of the chain; refusals keep
	// only a digest of what was presented, are kept a minute and make room first; refusals by
	// count or size are not kept at all. Default 4096; a negative value turns the cache off.
	CacheSize int
	// CacheMaxBytes bounds the memory the cached outcomes hold (an estimate counting the presented
	// material and the parsed chain of each identity); an outcome that does not fit is not
	// cached. Default 64 MiB; a negative value turns the cache off.
	CacheMaxBytes int64

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
//
// Several middlewares may serve one listener, each with its own trust, for per-route trust (the
// TLS layer only requests the certificate; each route's middleware decides). [RejectAtHandshake]
// then does not fit: it applies one middleware's trust to every connection.
type Middleware struct {
	optional          bool
	now               func() time.Time
	cacheSize         int
	cacheBytes        int64
	allowHostMismatch bool
	errorHandler      func(http.ResponseWriter, *http.Request, error)
	logger            *slog.Logger

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
	defaultCacheMaxBytes = 64 << 20
)

// New validates cfg and returns a Middleware. It reports every problem of the configuration at
// once.
func New(cfg Config) (*Middleware, error) {
	m := &Middleware{
		optional:          cfg.Optional,
		now:               cfg.Now,
		cacheSize:         cfg.CacheSize,
		cacheBytes:        cfg.CacheMaxBytes,
		allowHostMismatch: cfg.DangerouslyAllowHostMismatch,
		errorHandler:      cfg.ErrorHandler,
		logger:            cfg.Logger,
	}
	if m.now == nil {
		m.now = time.Now
	}
	if m.cacheSize == 0 {
		m.cacheSize = defaultCacheSize
	}
	if m.cacheBytes == 0 {
		m.cacheBytes = defaultCacheMaxBytes
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
	m.state.Store(&state{trust: t, cache: newCache(m.cacheSize, m.cacheBytes)})
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
	m.state.Store(&state{trust: t, cache: newCache(m.cacheSize, m.cacheBytes)})
	return nil
}

// Handler returns a handler that authenticates each request and calls next with the identity in
// the request context, or refuses the request through the error handler. It fits chi's
// r.Use(m.Handler). Unless the identity came from them, the certificate headers of header mode
// are removed (under any spelling) from the request next sees.
func (m *Middleware) Handler(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		d := m.authenticate(r)
		m.observe(w, r, &d)
		if d.err != nil {
			return
		}
		r = m.stripHeader(r, d.id)
		if d.id == nil {
			next.ServeHTTP(w, r)
			return
		}
		next.ServeHTTP(w, r.WithContext(NewContext(r.Context(), d.id)))
	})
}

// Authenticate runs the whole check on r and returns the identity, or an *Error. It writes no
// response and reports nothing about the request: no refusal record, no shadow-policy report.
// (Revocation checking may still query responders and, at most every 30 seconds, warn that answers
// are stale.) In optional mode a request without a certificate yields (nil, nil).
//
// Authenticate does not remove certificate headers from r: a caller that passes r on (to a
// handler, or through a reverse proxy) after authenticating it this way must delete them itself
// when the identity did not come from them, or a client's forged header travels on.
func (m *Middleware) Authenticate(r *http.Request) (*Identity, error) {
	d := m.authenticate(r)
	return d.id, d.err
}
