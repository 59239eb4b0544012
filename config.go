package mtls

import (
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"hash/maphash"
	"log/slog"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/certgate/mtls/internal/certheader"
	"github.com/certgate/mtls/internal/netprefix"
)

// Config configures a [Middleware]. The zero value of every field is its safe default; at least one
// trust anchor ([Config.RootCAs], [Config.RootCAFiles], [Config.PinnedSHA256] or
// [Config.PinnedSHA256Files]) is required.
// [New] copies what it needs: changing a Config after New has no effect.
//
// Numbers and durations mean the same in every field of Config and its sub-configurations: zero
// is the documented default; a negative value turns off what can be turned off (a cache, a
// budget) and is refused where nothing can be turned off (a bound, a timeout).
type Config struct {
	// RootCAs are the CAs whose (direct or indirect) client certificates are accepted. A pool is
	// opaque, so its keys are checked when a chain is verified: a chain resting on a CA whose key
	// a client could not present (RSA below 2048 or above 8192 bits, or another exponent than an
	// odd one from 3 to 65537) is refused as untrusted. Such a key in a file is refused by New.
	RootCAs *x509.CertPool
	// RootCAFiles are PEM files of further root CAs. They are read by New and again by
	// [Middleware.Reload]. A v3 certificate that is not a CA is refused here: pin such a
	// certificate with PinnedSHA256 instead. So is a certificate with a key a client could not
	// present (see RootCAs).
	RootCAFiles []string
	// Intermediates are extra intermediate CAs used to build chains, for clients that present
	// their leaf alone. They are not trust anchors. Their keys are checked as those of RootCAs.
	Intermediates *x509.CertPool
	// IntermediateFiles are PEM files of further intermediates, read like RootCAFiles (and
	// refused for the same keys).
	IntermediateFiles []string
	// PinnedSHA256 accepts individual leaf certificates by the SHA-256 fingerprint of their DER
	// (hex; case, colons and spaces ignored; openssl's "sha256 Fingerprint=" line accepted as
	// printed, see [ParseFingerprint]), whoever issued them: the way to register a partner's
	// self-signed client certificate. A pinned leaf must still be within its validity period, carry
	// the clientAuth extended key usage (see DangerouslyAllowNoExtKeyUsage) and not be a CA.
	PinnedSHA256 []string
	// PinnedSHA256Files are files of further pins, read like RootCAFiles: one SHA-256
	// fingerprint a line, as PinnedSHA256 writes them or as `openssl x509 -noout -fingerprint
	// -sha256` prints them ("sha256 Fingerprint=AB:CD:..."); blank lines and lines starting with
	// # are ignored. A file that holds no pin is valid, and trusts no certificate.
	PinnedSHA256Files []string
	// MaxChainDepth is the greatest number of CA certificates (intermediates and root) allowed above
	// the leaf in a verified chain. A self-issued intermediate (a CA's new key certified under its
	// own name by its old one, or the reverse) does not count (RFC 5280 6.1.4), one of each name
	// in the chain: further ones of that name do. A client may present
	// this number plus five certificates: its leaf, a chain of this depth, and four more that are
	// tried as candidates and may go unused (cross-signed copies of its CAs, say); at most three
	// of them may share a subject. Default 4, at most 15.
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
	// Host. Names compare with ASCII letters folded and nothing else, and a Host or server name
	// holding a non-ASCII byte is refused: names on the wire are A-labels ("xn--..."), and a
	// Unicode fold would match "ſ" (U+017F) to "s". A port in the Host must be digits; over
	// HTTP/2 a host header field beside :authority must name the same authority (RFC 9113,
	// section 8.3.1), ASCII letters folded. HTTP/2 clients that reuse a connection for another
	// host retry on a new connection when they get 421. A client that sends no SNI and a named
	// Host is refused (a Go client calling an address with req.Host set; nginx with
	// proxy_ssl_server_name off). No middleware after this one may rewrite r.Host. Default false.
	DangerouslyAllowHostMismatch bool

	// DangerouslyAllowNoExtKeyUsage accepts a client certificate that has no extended key usage
	// extension at all, as `openssl x509 -req` issues one without -extfile (RFC 5280, section
	// 4.2.1.12: no extension means any purpose), when OpenSSL's "sslclient" purpose, which nginx
	// checks, accepts it too: its key usage extension, if it has one, allows digitalSignature or
	// keyAgreement, and its Netscape certificate type extension (2.16.840.1.113730.1.1), if it
	// has one, includes SSL client; otherwise it is refused with a detail saying which.
	// (crypto/tls's own verification accepts such a leaf whatever these two say.) It opens
	// client authentication to every certificate of the trusted CAs (and every pinned one) issued
	// without the extension, for whatever purpose: a server's, a code-signing or an e-mail
	// certificate from the same CA authenticates as a client. Only the extension's absence is
	// accepted: a leaf whose extension lists other usages and not clientAuth is refused, one that
	// lists anyExtendedKeyUsage without clientAuth too (the CA chose its usages, and not this
	// one), and so is a CA certificate; intermediates that list their usages must still allow
	// clientAuth. Default false: the leaf must list clientAuth, and one without the extension is
	// refused as "certificate_wrong_usage" with a detail naming this option. Prefer reissuing the
	// certificates with clientAuth (openssl: -extfile with "extendedKeyUsage = clientAuth").
	DangerouslyAllowNoExtKeyUsage bool

	// CacheSize bounds the number of verification outcomes kept, rounded up to a power of two.
	// Outcomes are keyed by the whole presented chain (or the raw header values), confirmed byte
	// for byte on every hit, and never outlive the earliest NotAfter of the chain; refusals keep
	// only a digest of what was presented, are kept a minute and make room first; refusals by
	// count or size are not kept at all. Default 4096; a negative value turns the cache off.
	CacheSize int
	// CacheMaxBytes bounds the memory the cached outcomes hold (an estimate counting the identity
	// with its parsed leaf, and the header values of header mode; an accepted chain is matched
	// against its identity's own certificate bytes, and CA certificates are shared by all the
	// identities under them, at most 256 of them); an outcome that does not fit is not cached.
	// Default 64 MiB; a negative value turns the cache off.
	CacheMaxBytes int64
	// RefusalThrottle answers 429 "too_many_refusals", without verifying it, a certificate
	// presented again after it was refused too often within a window, and a peer without a
	// certificate refused too often (see [RefusalThrottleConfig]: what counts, the key, the
	// bound on memory). Default nil: off.
	RefusalThrottle *RefusalThrottleConfig

	// ErrorHandler writes refusals. It receives an *Error (see [StatusAndReason]). Default
	// [WriteError]. It must not send the error's text to the client.
	ErrorHandler func(w http.ResponseWriter, r *http.Request, err error)
	// Logger receives one record per decision (see [Event]): refusals at level Info with the full
	// reason, acceptances at Debug, acceptances on degraded revocation answers at Warn (at most
	// every 30 seconds), and a Warn record once a day per certificate that expires within
	// ExpiryWarning; and one per reload (Error for a failure, Info for a success). Refusals are
	// logged at Info once a minute per certificate and reason, and at most 20 at once and 5 a
	// second in all (on the clock of Now); the others go to Debug, and a Warn record "mtls:
	// refusal records suppressed" then says how many did, before the next at Info. These limits
	// are per middleware, whatever logger it shares: n middlewares (per-route trust) log up to n
	// times as many refusals. Each string in a record (an error, a name) is cut to 2 KiB.
	// OnDecision gets every event.
	//
	// Default nil: [slog.Default], as it is when each record is made (so a program may call
	// slog.SetDefault after New), gets the records that warn, under the same limits: refusals at
	// Info, the count of suppressed ones and degraded acceptances and expiry at Warn; no
	// acceptance (a healthy service logs nothing per request), no repeated or suppressed refusal,
	// no reload or shadow policy record. With no OnDecision either, an event is built only for a
	// record that the default handler is enabled for. To log nothing, set
	// slog.New(slog.DiscardHandler).
	Logger *slog.Logger
	// OnDecision receives the event of every decision, with the request's context (to annotate a
	// tracing span, or count in metrics): one per request, with its final outcome. It runs in the
	// request path, after the decision and before the refusal is written or the next handler
	// runs, with one exception: once a [Middleware.Require] or [Middleware.Shadow] of the
	// middleware was built, an acceptance by its handlers is reported when it is final, the first
	// of: the next handler (or anything below it) writes the response header, writes the body,
	// flushes or hijacks; or the next handler returns (or panics). A refusal by a Require below
	// the handler before then is reported in its place, before it is written; one after then (the
	// header written, the handler returned below [http.TimeoutHandler]) is handed to the error
	// handler with no event of its own. The handler then gives next a writer of its own, with
	// the optional interfaces of the writer below ([http.Flusher], [http.Hijacker],
	// io.ReaderFrom, [http.Pusher], [http.CloseNotifier]) and only those, passed on, which
	// unwraps for [http.ResponseController]. It must be fast and safe for concurrent use.
	// Default nil. With neither OnDecision nor Logger set, no event is built but for the records
	// of the default logger (see Logger).
	OnDecision func(ctx context.Context, ev Event)
	// ExpiryWarning is how long before its leaf expires an identity is flagged
	// ([Identity.ExpiresSoon], [Event.ExpiresSoon]) and logged, so that operators can tell a
	// partner before the outage. Default 14 days; a negative value turns the warning off.
	ExpiryWarning time.Duration

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
	// PolicyFiles are policy documents (see [ParsePolicy]) that every identity must satisfy too,
	// each of them and Policy, with refusals as for Policy. They are read by New and again by
	// [Middleware.Reload], in one swap with the trust. Default none.
	PolicyFiles []string
	// ShadowPolicy is evaluated beside Policy as a dry run and never refuses anything: its
	// outcome goes to OnShadow for every evaluated request, and to the logger (level Info) when it
	// would deny, or would allow a request that Policy denies. Use it to tighten rules safely.
	// Default nil.
	ShadowPolicy Policy
	// OnShadow receives each ShadowPolicy outcome (and those of [Middleware.Shadow]), for
	// metrics. It runs in the request path and must be fast and safe for concurrent use. A call
	// of [Middleware.Decide] hands its outcome to [Call.OnShadow] instead. Default nil.
	OnShadow func(r *http.Request, res ShadowResult)
	// Principals maps each verified identity to the account it stands for and sets
	// [Identity.Principal] on a per-request copy of the identity, before Policy runs (so that
	// policies can match the principal). An error from it refuses the request with 403. Default
	// nil: Principal stays empty.
	Principals PrincipalResolver

	// ReloadInterval turns on polling: every interval a goroutine started by New looks at the
	// files of the configuration (RootCAFiles, IntermediateFiles, PinnedSHA256Files, PolicyFiles,
	// the files of the [BindingStore]s of Principals, Revocation.DenyListFile, the file of a
	// [TierStore] as Throttle.Resolver, the policy files of [Middleware.Require] and
	// [Middleware.Shadow]) and calls
	// [Middleware.Reload] when one of them changed (its size, modification time and contents;
	// a file only touched is not reloaded). Stop it with [Middleware.Close]. Default 0, and any
	// negative value: no polling; call Reload yourself (on SIGHUP).
	ReloadInterval time.Duration

	// Throttle turns on throttling tiers: a token bucket per principal (or per certificate, for
	// identities without one), of the rate and burst of its tier, taken after the policy; a
	// request over it is refused with 429 "rate_limited" and Retry-After (see [ThrottleConfig]).
	// Default nil: requests are not limited.
	Throttle *ThrottleConfig
}

// ConfigError is one problem of a configuration, found by [New] or a reload: the field, by its
// path from [Config] (such as "Header.TrustedProxies[2]" or "RootCAFiles[0]"), and what is wrong
// with it. New reports every problem at once, joined with [errors.Join]; [errors.As] finds the
// first.
type ConfigError struct {
	Field string
	Err   error
}

// Error returns "mtls: <field>: <problem>".
func (e *ConfigError) Error() string {
	return "mtls: " + e.Field + ": " + strings.TrimPrefix(e.Err.Error(), "mtls: ")
}

// Unwrap returns the problem.
func (e *ConfigError) Unwrap() error { return e.Err }

// problems collects the problems of a configuration.
type problems struct{ errs []error }

// add records err (if not nil) as a problem of field.
func (p *problems) add(field string, err error) {
	if err != nil {
		p.errs = append(p.errs, &ConfigError{Field: field, Err: err})
	}
}

// addf records a problem of field.
func (p *problems) addf(field, format string, args ...any) {
	p.add(field, fmt.Errorf(format, args...))
}

// merge records the problems of err, an error of problems.err.
func (p *problems) merge(err error) {
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		p.errs = append(p.errs, j.Unwrap()...)
	} else if err != nil {
		p.errs = append(p.errs, err)
	}
}

func (p *problems) err() error { return errors.Join(p.errs...) }

// number applies the rule for numbers and durations to the field's value v: zero takes def; a
// negative value is kept (meaning off) when off is allowed, and is a problem otherwise.
func number[T int | int64 | time.Duration](p *problems, field string, v, def T, off bool) T {
	switch {
	case v == 0:
		return def
	case v < 0 && !off:
		p.addf(field, "%v is negative", v)
		return def
	}
	return v
}

const (
	defaultMaxChainDepth = 4
	// maxChainDepth leaves a chain of the longest depth within what a header decoder returns.
	maxChainDepth        = certheader.MaxCertificates - 1
	defaultCacheSize     = 4096
	defaultCacheMaxBytes = 64 << 20
)

// compile checks cfg field by field, applies the defaults and builds the middleware and its first
// state (the files read as Reload reads them). Every sub-configuration is compiled here, with its
// problems named by their field paths.
func compile(cfg *Config) (*Middleware, *state, error) {
	var p problems
	m := &Middleware{
		optional:          cfg.Optional,
		now:               cfg.Now,
		errorHandler:      cfg.ErrorHandler,
		logger:            cfg.Logger,
		allowHostMismatch: cfg.DangerouslyAllowHostMismatch,
		cacheSize:         number(&p, "CacheSize", cfg.CacheSize, defaultCacheSize, true),
		cacheBytes:        number(&p, "CacheMaxBytes", cfg.CacheMaxBytes, defaultCacheMaxBytes, true),
		onDecision:        cfg.OnDecision,
		expiryWarning:     number(&p, "ExpiryWarning", cfg.ExpiryWarning, defaultExpiryWarning, true),
	}
	m.watching = m.onDecision != nil || m.logger != nil
	if m.now == nil {
		m.now = time.Now
	}
	if m.errorHandler == nil {
		m.errorHandler = WriteError
	}
	m.trustCfg = trustConfig{
		roots:             cfg.RootCAs,
		rootFiles:         append([]string(nil), cfg.RootCAFiles...),
		intermediates:     cfg.Intermediates,
		intermediateFiles: append([]string(nil), cfg.IntermediateFiles...),
		pins:              append([]string(nil), cfg.PinnedSHA256...),
		pinFiles:          append([]string(nil), cfg.PinnedSHA256Files...),
		maxDepth:          number(&p, "MaxChainDepth", cfg.MaxChainDepth, defaultMaxChainDepth, false),
		allowNoEKU:        cfg.DangerouslyAllowNoExtKeyUsage,
	}
	if m.trustCfg.maxDepth > maxChainDepth {
		p.addf("MaxChainDepth", "%d is more than %d", m.trustCfg.maxDepth, maxChainDepth)
	}
	m.files = fileConfig{
		policyFiles: append([]string(nil), cfg.PolicyFiles...),
		stores:      bindingStores(cfg.Principals, nil),
		interval:    max(0, number(&p, "ReloadInterval", cfg.ReloadInterval, 0, true)),
	}
	if cfg.Revocation != nil {
		m.files.denyFile = cfg.Revocation.DenyListFile
	}
	if cfg.Header != nil {
		m.header = compileHeader(&p, cfg.Header, m.now)
	}
	if cfg.Revocation != nil {
		m.revoc = compileRevocation(&p, cfg.Revocation, m.now, m.logger)
	}
	m.refusalCfg = compileRefusals(&p, cfg.RefusalThrottle)
	if cfg.Header != nil && cfg.Header.DangerouslyTrustProxyVerification && cfg.Revocation != nil {
		// Revocation answers are verified with the issuer of a verified chain; a chain the proxy
		// vouched for was never verified here, so a client could choose the issuer.
		p.addf("Revocation", "cannot be combined with Header.DangerouslyTrustProxyVerification: revocation needs chains verified by the middleware")
	}
	m.policies = compilePolicies(&p, cfg)
	if cfg.Throttle != nil {
		m.throttle = compileThrottle(&p, cfg.Throttle, cfg.Principals != nil)
	}
	if m.files.interval > 0 {
		m.reload.marks = m.scan() // before reading: a change made meanwhile is seen by the first poll
	}
	st, err := m.load()
	p.merge(err)
	if err := p.err(); err != nil {
		return nil, nil, err
	}
	return m, st, nil
}

// compileNames checks the format and names of a HeaderConfig into h, and returns the family of
// the format's headers: the names, the format's default names and its companions.
func compileNames(p *problems, cfg *HeaderConfig, h *headerSource) []string {
	if h.format == nil {
		p.addf("Header.Format", "is nil (use HeaderFormat or MustHeaderFormat)")
		return nil
	}
	h.formatName = h.format.Name()
	defaults := h.format.HeaderNames()
	h.nvalues = len(defaults)
	names := defaults
	if len(cfg.Names) > 0 {
		names = cfg.Names
	}
	switch {
	case len(defaults) == 0 || len(defaults) > maxHeaderNames:
		p.addf("Header.Format", "%q reads %d headers, want 1 to %d", h.formatName, len(defaults), maxHeaderNames)
		return nil
	case len(names) > len(defaults):
		p.addf("Header.Names", "%d names, format %q reads at most %d", len(names), h.formatName, len(defaults))
		return nil
	}
	var err error
	h.names, err = canonicalNames(names)
	p.add("Header.Names", err)
	family := append(slices.Clone(h.names), defaults...)
	if cf, ok := h.format.(companionHeaders); ok {
		own, err := canonicalNames(cf.CompanionHeaders())
		p.add("Header.Format", err)
		family = append(family, own...)
	}
	if lf, ok := baseFormat(h.format).(listHeaders); ok {
		for i := range h.names {
			h.lists[i] = lf.listHeader(i)
		}
	}
	return family
}

// compileHeader checks a HeaderConfig and freezes it.
func compileHeader(p *problems, cfg *HeaderConfig, now func() time.Time) *headerSource {
	h := &headerSource{
		format:     cfg.Format,
		policy:     cfg.ProxyPolicy,
		maxBytes:   number(p, "Header.MaxBytes", cfg.MaxBytes, DefaultHeaderMaxBytes, false),
		trustProxy: cfg.DangerouslyTrustProxyVerification,
		probePath:  checkProbePath(p, cfg.ProbePath),
	}
	family := compileNames(p, cfg, h)
	companions, err := canonicalNames(cfg.CompanionHeaders)
	p.add("Header.CompanionHeaders", err)
	if n := len(cfg.CompanionHeaders); n > maxCompanionHeaders {
		p.addf("Header.CompanionHeaders", "%d names, at most %d", n, maxCompanionHeaders)
	}
	h.family = newNameSet(append(family, companions...))
	h.binName = binNameOf(h.names)
	for i, pfx := range cfg.TrustedProxies {
		field := fmt.Sprintf("Header.TrustedProxies[%d]", i)
		if !pfx.IsValid() {
			p.addf(field, "invalid prefix %v", pfx)
			continue
		}
		pfx = netprefix.Unmap(pfx).Masked()
		if pfx.Bits() == 0 {
			p.addf(field, "%v would trust every peer", pfx)
			continue
		}
		h.prefixes = append(h.prefixes, pfx)
	}
	if h.policy != nil {
		h.policy, _ = withClock(h.policy, now)
	}
	compileXFCCBy(p, cfg, h)
	if len(cfg.TrustedProxies) == 0 && cfg.ProxyPolicy == nil {
		p.addf("Header", "header mode without a trusted proxy: set Header.TrustedProxies or Header.ProxyPolicy")
	}
	return h
}

// maxXFCCBy bounds the values of HeaderConfig.XFCCBy.
const maxXFCCBy = 16

// compileXFCCBy checks HeaderConfig.XFCCBy and freezes it into h.
func compileXFCCBy(p *problems, cfg *HeaderConfig, h *headerSource) {
	if len(cfg.XFCCBy) == 0 {
		return
	}
	if _, ok := baseFormat(h.format).(hopsDecoder); !ok && h.format != nil {
		p.addf("Header.XFCCBy", "format %q does not read X-Forwarded-Client-Cert hops (use the envoy-xfcc preset)", h.formatName)
	}
	if len(cfg.XFCCBy) > maxXFCCBy {
		p.addf("Header.XFCCBy", "%d values, at most %d allowed", len(cfg.XFCCBy), maxXFCCBy)
	}
	for i, by := range cfg.XFCCBy {
		if why := certheader.ValidXFCCBy(by); why != "" {
			p.addf(fmt.Sprintf("Header.XFCCBy[%d]", i), "%s", why)
		}
	}
	h.xfccBy = slices.Clone(cfg.XFCCBy)
}

// compilePolicies checks the policy fields of cfg.
func compilePolicies(p *problems, cfg *Config) policyRuntime {
	pr := policyRuntime{
		policy:     cfg.Policy,
		shadow:     cfg.ShadowPolicy,
		onShadow:   cfg.OnShadow,
		principals: cfg.Principals,
	}
	if cfg.Now != nil { // clockless rules (min_validity from documents) run on Config.Now
		pr.policy, _ = withClock(pr.policy, cfg.Now)
		pr.shadow, _ = withClock(pr.shadow, cfg.Now)
	}
	if pr.onShadow != nil && pr.shadow == nil {
		p.addf("OnShadow", "is set but ShadowPolicy is not")
	}
	switch r := cfg.Principals.(type) {
	case *BindingStore:
		if r == nil {
			p.add("Principals", errNilBindings)
		}
	case *Bindings:
		if r == nil {
			p.add("Principals", errNilBindings)
		}
	}
	return pr
}

// compileRevocation checks a RevocationConfig and builds the revocation step; CRL files are read
// here, CRL URLs are downloaded once the whole configuration holds.
func compileRevocation(p *problems, cfg *RevocationConfig, now func() time.Time, logger *slog.Logger) *revocation {
	rv := &revocation{
		now:          now,
		skew:         number(p, "Revocation.ClockSkew", cfg.ClockSkew, defaultClockSkew, false),
		staleIfError: max(0, number(p, "Revocation.StaleIfError", cfg.StaleIfError, defaultStaleIfError, true)),
		failOpen:     cfg.DangerouslyFailOpen,
		chain:        cfg.CheckChain,
		timeout:      number(p, "Revocation.Timeout", cfg.Timeout, defaultRevocationWait, false),
		client:       cfg.HTTPClient,
		logger:       logger,
		baseCtx:      cfg.Context,
		sem:          make(chan struct{}, maxBackground),
		dpSem:        make(chan struct{}, maxDPDownloads),
		after:        time.After,
		deny:         cfg.DenyList,
		remoteURL:    cfg.DenyListURL,
		remoteEvery:  number(p, "Revocation.DenyListInterval", cfg.DenyListInterval, defaultDenyListInterval, true),
	}
	if cfg.OCSP == nil && cfg.CRL == nil && cfg.DenyList == nil && cfg.DenyListFile == "" && cfg.DenyListURL == "" {
		p.addf("Revocation", "set OCSP, CRL, DenyList, DenyListFile or DenyListURL")
	}
	if cfg.DenyListURL != "" {
		p.add("Revocation.DenyListURL", checkDenyListURL(cfg.DenyListURL))
		rv.remote = NewDenyList()
	}
	if cfg.OCSP != nil {
		rv.ocsp = compileOCSP(p, rv, cfg.OCSP)
	}
	if cfg.CRL != nil {
		rv.crl = compileCRL(p, rv, cfg.CRL)
	}
	if rv.client == nil {
		fetch := rv.timeout
		if rv.crl != nil {
			fetch = max(fetch, rv.crl.timeout)
		}
		rv.client = &http.Client{
			Timeout: fetch,
			// Responders and CRLs are fetched from URLs a trusted CA chose; a redirect would let
			// whoever answers on a plain-http URL point the fetch anywhere, internal addresses
			// included. A redirect is an answer that is not a response: status unknown.
			CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
		}
	}
	if rv.remote != nil {
		rv.remoteName, rv.remoteHTTP = reportedURL(cfg.DenyListURL), httpsOnly(rv.client)
	}
	if rv.baseCtx == nil {
		rv.baseCtx = context.Background()
	}
	return rv
}

// compileOCSP checks an OCSPConfig.
func compileOCSP(p *problems, rv *revocation, cfg *OCSPConfig) *ocspChecker {
	o := &ocspChecker{
		rv:        rv,
		responder: cfg.Responder,
		maxBytes:  number(p, "Revocation.OCSP.MaxResponseBytes", cfg.MaxResponseBytes, defaultOCSPMaxBytes, false),
		max:       number(p, "Revocation.OCSP.CacheSize", cfg.CacheSize, defaultOCSPCacheSize, false),
		maxAge:    number(p, "Revocation.OCSP.MaxAge", cfg.MaxAge, defaultOCSPMaxAge, true),
		seed:      maphash.MakeSeed(),
		entries:   map[uint64]*ocspEntry{},
		revoked:   map[uint64]ocspRevocation{},
	}
	if o.responder != "" {
		p.add("Revocation.OCSP.Responder", checkFetchURL(o.responder))
	}
	return o
}

// compileCRL checks a CRLConfig and reads its files.
func compileCRL(p *problems, rv *revocation, cfg *CRLConfig) *crlChecker {
	ck := &crlChecker{
		rv:         rv,
		maxBytes:   number(p, "Revocation.CRL.MaxBytes", cfg.MaxBytes, defaultCRLMaxBytes, false),
		dpMaxBytes: number(p, "Revocation.CRL.DistributionPointMaxBytes", cfg.DistributionPointMaxBytes, defaultCDPMaxBytes, false),
		timeout:    number(p, "Revocation.CRL.FetchTimeout", cfg.FetchTimeout, defaultCRLFetchTimeout, false),
		interval:   number(p, "Revocation.CRL.RefreshInterval", cfg.RefreshInterval, defaultCRLInterval, false),
		useDP:      cfg.DistributionPoints,
		dp:         map[string]*crlSource{},
	}
	if len(cfg.Files) == 0 && len(cfg.URLs) == 0 && !cfg.DistributionPoints {
		p.addf("Revocation.CRL", "set Files, URLs or DistributionPoints")
	}
	empty := map[string][]*crlSource{}
	ck.byIssuer.Store(&empty)
	for i, f := range cfg.Files {
		src := &crlSource{ck: ck, path: f, configured: true}
		p.add(fmt.Sprintf("Revocation.CRL.Files[%d]", i), src.refresh(context.Background(), nil))
		ck.configured = append(ck.configured, src)
	}
	urls := 0
	for i, u := range cfg.URLs {
		if err := checkFetchURL(u); err != nil {
			p.add(fmt.Sprintf("Revocation.CRL.URLs[%d]", i), err)
			continue
		}
		ck.configured = append(ck.configured, &crlSource{ck: ck, url: u, configured: true})
		urls++
	}
	ck.unloaded.Store(int32(urls))
	ck.rebuildIndex()
	return ck
}
