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
// Every request takes the same steps, whichever source delivered the certificate, and a proxy
// trusted by its own certificate takes them too:
//
//   - claim: what the request presents: the chain of its TLS connection, or the certificate
//     headers of a proxy the configuration trusts ([Config.Header]); from any other peer such
//     headers are removed (under any spelling) and ignored (claim.go);
//   - screen: bounds on what was presented, before any signature is checked: the number of
//     certificates, the size of each, RSA key sizes and exponents, candidates of one name
//     (screen.go); a refusal here is not cached;
//   - cache: an outcome for the very same chain, in any order of the certificates after the leaf
//     (or the very same header values), is reused (cache.go);
//   - parse and verify: chain to a trust anchor or a pin, clientAuth usage, validity, depth,
//     critical extensions; presented CAs are used only once they verify up to a root (verify.go);
//   - revocation: deny list, OCSP and CRLs, hard-fail by default ([Config.Revocation],
//     revocation.go);
//   - principal and policy: who the certificate stands for, and whether it may proceed
//     ([Config.Principals], [Config.Policy], policy.go); per route with [Middleware.Require];
//   - throttle: with [Config.Throttle], the token bucket of the identity's tier, per principal
//     (or per certificate), refuses with 429 and Retry-After (throttle.go);
//   - identity: placed in the context for the next handler ([FromContext]); refusals go to
//     [Config.ErrorHandler] and, with every decision, to the one observer that logs
//     (observe.go).
//
// pipeline.go runs the steps in this order; config.go compiles the configuration once, in [New].
//
// # Other transports
//
// The net/http handlers build a [Call] from each request and run the pipeline on it.
// [Middleware.Decide] runs the same pipeline, and reports the same event, for a call of any
// other transport (a gRPC interceptor: TLS state, peer, :authority, metadata, and the method's
// own [Call.Policy]); [Middleware.StripCertificateFields] removes a client's forged certificate
// fields before its handler runs (call.go).
//
// # Where the decision is made
//
// The TLS layer only requests the certificate ([Middleware.TLSConfig]); the decision is made by the
// middleware in the HTTP request, so that clients get a readable error instead of a failed
// handshake and so that trust can be reloaded at run time ([Middleware.Reload]) without
// restarting the listener. The handshake refuses only chains that no client of the service
// presents and that would be expensive to check (see [Middleware.TLSConfig]); [RejectAtHandshake]
// additionally refuses bad certificates during the handshake. Refusals at the handshake are
// reported like those of requests ([Event.Handshake]).
//
// # Certificates and other credentials
//
// [Middleware.Handler] requires a certificate. [Middleware.Either] accepts a certificate or the
// service's own credentials (a [CredentialCheck]: password, API key, token), [Middleware.Both]
// requires both; [Identity.ConfirmX5tS256] binds an access token to the certificate (RFC 8705).
//
// # Reloading
//
// [Middleware.Reload] reads every file of the configuration again (roots, intermediates, pins,
// policy documents, principal bindings, the deny list file, the tier file ([TierStore]), and the policy files
// ([LoadPolicyFile]) of the routes' [Middleware.Require]) and swaps them in at once, or keeps
// everything in force if one is bad; [Config.ReloadInterval] calls it when a file changes, and
// [Middleware.ReloadStatus] reports the outcomes (reload.go).
//
// # Security model
//
// Verified: the chain leads to a configured root (client-presented intermediates, and a proxy's
// forwarded chain, are only candidates, and only those that verify up to a root are used: any
// path that does, through cross-signed copies or self-issued key rollover certificates too), or
// the leaf is pinned; presented and configured keys are RSA of 2048 to 8192 bits with a public
// exponent from 3 to 65537, ECDSA on P-256, P-384 or P-521, or Ed25519, and presented
// certificates at most 16 KiB, at most four more than the longest chain allowed (repeated copies
// of one certificate are dropped); the leaf carries the clientAuth extended key usage (or no
// extended key usage extension at all, with [Config.DangerouslyAllowNoExtKeyUsage]) and is not
// a CA; every certificate of the chain is within its validity period at [Config.Now]; the chain
// is no deeper than [Config.MaxChainDepth], one self-issued intermediate of each name not
// counted; the same presented certificates, in any order, give the same chain. A forwarded certificate is
// believed only from a trusted proxy, and is verified like a direct one unless
// [HeaderConfig.DangerouslyTrustProxyVerification] says otherwise. Revocation is checked when
// configured, and "could not check" refuses unless [RevocationConfig.DangerouslyFailOpen] is set.
// On a direct TLS connection with a client certificate, the request's Host must name the server
// the client named in the handshake, with a port of digits if any, and an HTTP/2 host field
// must name the same ([Config.DangerouslyAllowHostMismatch]). Who may call what is
// up to the policies you configure.
package mtls

import (
	"context"
	"log/slog"
	"net/http"
	"sync/atomic"
	"time"
)

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
	onDecision        func(context.Context, Event)
	watching          bool          // an event is built for each decision: onDecision or logger set
	expiryWarning     time.Duration // negative: off
	expiryWarned      recentKeys    // leaves warned about, once a day
	refusalLogged     recentKeys    // refusals logged at Info, once a minute per leaf and reason
	refusalBudget     logBudget     // and a few a second in all

	trustCfg trustConfig
	header   *headerSource         // nil: header mode off
	revoc    *revocation           // nil: revocation not checked
	throttle *throttle             // nil: no throttling tiers (throttle.go)
	policies policyRuntime         // Policy, ShadowPolicy, OnShadow, Principals
	files    fileConfig            // the other files Reload reads
	reload   reloader              // polling, status, goroutines (reload.go)
	state    atomic.Pointer[state] // what the files configure, and the outcomes under that trust

	lastDegradedLog atomic.Int64 // when a degraded acceptance was last logged (UnixNano)
	// routes: a Require or Shadow of the middleware was built; with an event for each decision,
	// the handlers' acceptances then wait for them (observe.go).
	routes atomic.Bool

	refusalCfg *refusalConfig // Config.RefusalThrottle; nil: off (the table is the state's)
}

// New validates cfg and returns a Middleware. It reports every problem of the configuration at
// once, each as a [*ConfigError] naming its field. With [Config.ReloadInterval] or
// [RevocationConfig.DenyListURL] it starts goroutines: call [Middleware.Close] to stop them.
func New(cfg Config) (*Middleware, error) {
	m, st, err := compile(&cfg)
	if err != nil {
		return nil, err
	}
	m.install(st)
	base := context.Background()
	if m.revoc != nil {
		base = m.revoc.baseCtx
	}
	m.reload.ctx, m.reload.cancel = context.WithCancel(base)
	if m.revoc != nil && m.revoc.remote != nil {
		m.reload.url.Sources = []string{m.revoc.remoteName}
		if err := m.refreshDenyList(m.reload.ctx); err != nil {
			m.reload.cancel()
			return nil, &ConfigError{Field: "Revocation.DenyListURL", Err: err}
		}
	}
	if m.revoc != nil && m.revoc.crl != nil {
		m.revoc.crl.startDownloads() // only once the whole configuration holds
	}
	m.start()
	return m, nil
}

// Handler returns a handler that authenticates each request and calls next with the identity in
// the request context, or refuses the request through the error handler. It fits chi's
// r.Use(m.Handler). Unless the identity came from them, the certificate headers of header mode
// and their companions are removed (under any spelling) from the request next sees, and never
// reach it as trailers (see [HeaderConfig]). Once a [Middleware.Require] or
// [Middleware.Shadow] of the middleware was built, and with an observer, next gets a writer of
// the handler's own, whose first write of the header reports the acceptance (see
// [Config.OnDecision]).
func (m *Middleware) Handler(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if m.probing(w, r) {
			return
		}
		start := m.clock()
		d := m.authenticate(r)
		if d.err != nil {
			m.observe(w, r, &d, start)
			return
		}
		m.proceed(w, r, false, &d, start, next)
	})
}

// Authenticate runs the whole check on r and returns the identity, or an *Error. It writes no
// response and reports nothing about the request: no refusal record, no shadow-policy report, no
// record of an acceptance on a degraded revocation answer (the identity's Revocation says so).
// Revocation checking may still query responders, and log a source's failure. In optional mode a
// request without a certificate yields (nil, nil).
//
// Authenticate does not remove certificate headers or their companions from r, nor from its
// trailers: a caller that passes r on (to a handler, or through a reverse proxy) after
// authenticating it this way must delete them itself when the identity did not come from them,
// and from the trailers in any case, or a client's forged header travels on.
func (m *Middleware) Authenticate(r *http.Request) (*Identity, error) {
	d := m.authenticate(r)
	return d.id, d.err
}
