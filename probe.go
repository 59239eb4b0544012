package mtls

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strings"

	"github.com/certgate/mtls/internal/certheader"
)

// The proxy probe checks, through the real proxy, that a client cannot forge the headers that
// header mode reads. The service answers it at [HeaderConfig.ProbePath]; [ProbeProxy] sends
// forged certificate headers carrying a canary value and reports each one that arrived.
//
// The route is answered by the middleware itself ([Middleware.Handler], [Middleware.Either],
// [Middleware.Both]), before authentication and in place of the next handler, so that it is
// reached wherever the middleware runs (srv.Handler = m.Handler(mux), chi's r.Use(m.Handler))
// and a forged header that passed through cannot turn into a refusal before the probe sees it.
// It never calls the next handler, so it cannot let a request past the middleware.

// ProbeCanaryPrefix starts every canary value of the proxy probe: a header counts as arrived when
// one of its values contains the prefix followed by the request's token.
const ProbeCanaryPrefix = "mtls-probe-canary-"

// Bounds of the probe.
const (
	probeVersion      = "mtls-probe/1"
	probeTokenMin     = 16
	probeTokenMax     = 64
	probeMaxNames     = 64       // names in one answer; more sets "truncated"
	probeMaxNameLen   = 256      // a longer name is not echoed; it sets "truncated"
	probeMaxAnswer    = 32 << 10 // bytes of an answer the client reads
	probeTokenParam   = "canary"
	probeTokenEntropy = 16 // random bytes of the client's token
)

// Bounds of one probe request. A request past a proxy's limits is refused (Go's net/http reads
// at most 4 KiB of request trailers, nginx 8 KiB per header buffer, HAProxy the headers within
// tune.bufsize, Apache 100 fields), and a refused request checks nothing: so the names are
// forged in batches, each in requests of its own, each batch within these bounds.
const (
	// probeBatchBytes bounds the forged field lines of one request ("Name: canary\r\n").
	probeBatchBytes = 3 << 10
	// probeBatchNames bounds the names of one request, at most probeMaxNames so that one answer
	// can name every forged header that arrived.
	probeBatchNames = 32
)

// probeAnswer is the probe's JSON answer.
type probeAnswer struct {
	Probe        string   `json:"probe"`         // probeVersion
	Canary       string   `json:"canary"`        // the request's token, so that no stale answer counts
	TrustedProxy bool     `json:"trusted_proxy"` // the peer is a trusted proxy
	Headers      []string `json:"headers"`       // names of the headers carrying the canary, sorted
	Truncated    bool     `json:"truncated,omitempty"`
}

// checkProbePath checks HeaderConfig.ProbePath and returns it.
func checkProbePath(p *problems, path string) string {
	if path == "" {
		return ""
	}
	switch {
	case path[0] != '/':
		p.addf("Header.ProbePath", "%q does not start with /", path)
	case path == "/":
		p.addf("Header.ProbePath", "is / : the probe would take the site's root")
	case strings.ContainsAny(path, "?#") || strings.IndexFunc(path, func(r rune) bool { return r <= ' ' || r == 0x7f }) >= 0:
		p.addf("Header.ProbePath", "%q is not a plain path", path)
	default:
		return path
	}
	return ""
}

// probing answers r and returns true when r asks for the probe route.
func (m *Middleware) probing(w http.ResponseWriter, r *http.Request) bool {
	if m.header == nil || m.header.probePath == "" || r.URL.Path != m.header.probePath {
		return false
	}
	m.answerProbe(w, r)
	return true
}

// answerProbe answers the probe: which request headers carry the canary the client chose, and
// whether the peer is a trusted proxy. It reads no body, echoes nothing but the names of headers
// that carry the client's own canary (and the client's own token), and reveals no configuration.
func (m *Middleware) answerProbe(w http.ResponseWriter, r *http.Request) {
	h := w.Header()
	h.Set("Cache-Control", "no-store")
	h.Set("X-Content-Type-Options", "nosniff")
	if r.Method != http.MethodGet {
		h.Set("Allow", http.MethodGet)
		w.WriteHeader(http.StatusMethodNotAllowed)
		return
	}
	token, ok := probeToken(r.URL.RawQuery)
	if !ok {
		w.WriteHeader(http.StatusBadRequest)
		return
	}
	_, trusted := m.trustedProxy(m.state.Load(), r)
	a := probeAnswer{Probe: probeVersion, Canary: token, TrustedProxy: trusted, Headers: []string{}}
	a.Headers, a.Truncated = canaryHeaders(r.Header, ProbeCanaryPrefix+token)
	body, err := json.Marshal(&a)
	if err != nil {
		w.WriteHeader(http.StatusInternalServerError)
		return
	}
	h.Set("Content-Type", "application/json")
	_, _ = w.Write(append(body, '\n'))
}

// probeToken returns the canary token of a probe's query: the value of its one "canary"
// parameter, 16 to 64 ASCII letters and digits.
func probeToken(rawQuery string) (string, bool) {
	token, found := "", false
	for rest := rawQuery; rest != ""; {
		var pair string
		pair, rest, _ = strings.Cut(rest, "&")
		key, value, _ := strings.Cut(pair, "=")
		if key != probeTokenParam {
			continue
		}
		if found {
			return "", false // given twice: which one the proxy kept is not ours to guess
		}
		token, found = value, true
	}
	if len(token) < probeTokenMin || len(token) > probeTokenMax {
		return "", false
	}
	for i := 0; i < len(token); i++ {
		if c := token[i]; !('0' <= c && c <= '9' || 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z') {
			return "", false
		}
	}
	return token, true
}

// canaryHeaders returns the sorted names of the headers with a value that contains canary (at
// most probeMaxNames, each at most probeMaxNameLen long), and whether any was left out. It reads
// each value once.
func canaryHeaders(h http.Header, canary string) ([]string, bool) {
	names, truncated := []string{}, false
	for k, vs := range h {
		for _, v := range vs {
			if !strings.Contains(v, canary) {
				continue
			}
			if len(names) >= probeMaxNames || len(k) > probeMaxNameLen {
				truncated = true
			} else {
				names = append(names, k)
			}
			break
		}
	}
	slices.Sort(names)
	return names, truncated
}

// Errors of [ProbeProxy], for [errors.Is].
var (
	// ErrProbeForwarded: headers that the client forged reached the service through the proxy.
	ErrProbeForwarded = errors.New("mtls: the proxy forwarded headers the client forged")
	// ErrProbeInconclusive: the probe could not tell, because no request reached the probe route
	// or the service did not see the probe's peer as a trusted proxy.
	ErrProbeInconclusive = errors.New("mtls: proxy probe inconclusive")
)

// ProbeOption configures [ProbeProxy].
type ProbeOption func(*probeOptions)

type probeOptions struct {
	certClient *http.Client
	headers    []string
}

// ProbeWithCertificate also sends every probe with c, a client that presents a client
// certificate (the client given to ProbeProxy should present none), so that the proxy is checked
// in both cases: a proxy may set the certificate header when the client has a certificate and let
// a forged one through when it has none.
func ProbeWithCertificate(c *http.Client) ProbeOption {
	return func(o *probeOptions) { o.certClient = c }
}

// ProbeHeaders adds header names to forge, beyond those of the preset formats: the names a
// custom [Format] or [HeaderConfig.Names] reads, and whatever else the service believes from the
// proxy.
func ProbeHeaders(names ...string) ProbeOption {
	return func(o *probeOptions) { o.headers = append(o.headers, names...) }
}

// The clients of a probe, as ProbeResult.Client names them.
const (
	probeWithoutCert = "without certificate"
	probeWithCert    = "with certificate"
)

// ProbeResult is the outcome of one probe request.
type ProbeResult struct {
	// Client is "without certificate" or "with certificate".
	Client string
	// Spelling is how the forged names were written: "canonical" (X-Ssl-Client-Cert),
	// "lower-case" (x-ssl-client-cert), "underscore" (X_Ssl_Client_Cert), or "trailer"
	// (canonical, as request trailers).
	Spelling string
	// Batch numbers the batch of names the request forged, from 0: the names are split into
	// batches small enough for common proxy limits, and each batch is sent in every spelling.
	Batch int
	// Forged are the names the request forged, as spelled.
	Forged []string
	// Sent is the number of forged headers sent: len(Forged).
	Sent int
	// Status is the HTTP status of the answer; 0 when none came.
	Status int
	// Answered says whether the probe route answered; when not, Err says what came instead.
	Answered bool
	// TrustedProxy says whether the service saw the request's peer as a trusted proxy.
	TrustedProxy bool
	// Arrived are the names of the forged headers that reached the service, as it received them.
	Arrived []string
	// Truncated says that more forged headers arrived than the answer names.
	Truncated bool
	// Err is why the probe route did not answer: a transport error (such as a proxy that refuses
	// the handshake without a certificate), or an answer that is not the probe's.
	Err error
}

// ProbeReport is the outcome of [ProbeProxy].
type ProbeReport struct {
	// Results holds one entry per request, in the order sent.
	Results []ProbeResult
	err     error // the setup's error: nothing was sent
}

// Arrived returns the distinct names of the forged headers that reached the service, sorted: the
// headers the proxy must set or remove.
func (p *ProbeReport) Arrived() []string {
	var names []string
	for _, r := range p.Results {
		names = append(names, r.Arrived...)
	}
	slices.Sort(names)
	return slices.Compact(names)
}

// Err returns nil when the probe passed: at least one request reached the probe route (one with
// a certificate, when [ProbeWithCertificate] was given: a proxy may refuse a client without one),
// every one that did came from a trusted proxy, each client that reached it did so with every
// batch of names (in at least one spelling), and no forged header arrived. Otherwise it returns an error
// matching [ErrProbeForwarded] (naming every header that arrived) and/or [ErrProbeInconclusive].
func (p *ProbeReport) Err() error {
	if p.err != nil {
		return p.err
	}
	var errs []error
	truncated, answered, untrusted := false, 0, 0
	withCert, withCertAnswered := false, false
	for _, r := range p.Results {
		truncated = truncated || r.Truncated
		withCert = withCert || r.Client == probeWithCert
		if r.Answered {
			answered++
			withCertAnswered = withCertAnswered || r.Client == probeWithCert
			if !r.TrustedProxy {
				untrusted++
			}
		}
	}
	if names := p.Arrived(); len(names) > 0 || truncated {
		list := strings.Join(names, ", ")
		if truncated {
			list += " and more"
		}
		errs = append(errs, fmt.Errorf("%w: %s", ErrProbeForwarded, strings.TrimPrefix(list, " ")))
	}
	switch {
	case answered == 0:
		why := "no requests sent"
		if len(p.Results) > 0 {
			r := p.Results[0]
			why = fmt.Sprintf("first %s, %s: %v", r.Client, r.Spelling, r.Err)
		}
		errs = append(errs, fmt.Errorf("%w: no request reached the probe route (is HeaderConfig.ProbePath set to this path?); %s", ErrProbeInconclusive, why))
	case withCert && !withCertAnswered:
		errs = append(errs, fmt.Errorf("%w: no request with a client certificate reached the probe route", ErrProbeInconclusive))
	case untrusted > 0:
		errs = append(errs, fmt.Errorf("%w: %d of %d answers say the service did not see a trusted proxy (the probe went around the proxy, or TrustedProxies does not hold it)", ErrProbeInconclusive, untrusted, answered))
	}
	if err := p.uncheckedErr(); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

// uncheckedErr returns an error naming a batch of names that went unchecked: a client reached the
// probe route, but with no request forging this batch (a proxy refused them all, such as for
// being past its header limits). A client that never reached it is judged by Err alone.
func (p *ProbeReport) uncheckedErr() error {
	type key struct {
		client string
		batch  int
	}
	answered, reached := map[key]bool{}, map[string]bool{}
	for _, r := range p.Results {
		if r.Answered {
			answered[key{r.Client, r.Batch}], reached[r.Client] = true, true
		}
	}
	for _, r := range p.Results {
		if reached[r.Client] && !answered[key{r.Client, r.Batch}] {
			names := r.Forged
			more := ""
			if len(names) > 3 {
				names, more = names[:3], fmt.Sprintf(" and %d more", len(r.Forged)-3)
			}
			return fmt.Errorf("%w: %s: no request forging %s%s reached the probe route (%s: %v)",
				ErrProbeInconclusive, r.Client, strings.Join(names, ", "), more, r.Spelling, r.Err)
		}
	}
	return nil
}

// ProbeProxy checks that the proxy in front of a service in header mode does not let a client
// forge the headers the service believes. url is the service's [HeaderConfig.ProbePath] as
// reached through the proxy, such as "https://api.example.com/.well-known/mtls-probe".
//
// It forges every header name of the preset formats, their companion headers (such as a
// verification verdict) and the names of [ProbeHeaders], with a canary value, in GET requests
// through client (which should present no client certificate) and, with [ProbeWithCertificate],
// through a client that does. The names are split into batches that keep each request within
// common proxy limits (at most 32 names and 3 KiB of forged field lines), and each batch is sent
// once in each spelling: canonical, lower-case, and with '_' for '-'; and once as request
// trailers, which the probe route does not read (it reads no body) but finds when the proxy
// turns them into headers. A proxy that sets or removes each of these headers passes; one that
// lets any through fails, naming it.
//
// The report is never nil, and the error is its Err: non-nil unless the probe passed. The probe
// is cheap for the service (one small answer per request), so it may run periodically against
// production.
func ProbeProxy(ctx context.Context, client *http.Client, url string, opts ...ProbeOption) (*ProbeReport, error) {
	rep := &ProbeReport{}
	var o probeOptions
	for _, opt := range opts {
		opt(&o)
	}
	base, names, err := probeSetup(client, url, o.headers)
	if err != nil {
		rep.err = err
		return rep, err
	}
	clients := []struct {
		name string
		c    *http.Client
	}{{probeWithoutCert, client}}
	if o.certClient != nil {
		clients = append(clients, struct {
			name string
			c    *http.Client
		}{probeWithCert, o.certClient})
	}
	batches := probeBatches(names)
	for _, c := range clients {
		for _, sp := range probeSpellings {
			for i, batch := range batches {
				if err := ctx.Err(); err != nil {
					rep.err = fmt.Errorf("mtls: proxy probe: %w", err)
					return rep, rep.err
				}
				res := probeOnce(ctx, c.c, base, batch, sp.spell, sp.trailer)
				res.Client, res.Spelling, res.Batch = c.name, sp.name, i
				rep.Results = append(rep.Results, res)
			}
		}
	}
	return rep, rep.Err()
}

// probeBatches splits names into batches in order, each within probeBatchNames names and
// probeBatchBytes of field lines (a longer name goes alone).
func probeBatches(names []string) [][]string {
	const perLine = len(": ") + len(ProbeCanaryPrefix) + 2*probeTokenEntropy + len("\r\n")
	var batches [][]string
	var cur []string
	size := 0
	for _, n := range names {
		line := len(n) + perLine
		if len(cur) > 0 && (len(cur) == probeBatchNames || size+line > probeBatchBytes) {
			batches = append(batches, cur)
			cur, size = nil, 0
		}
		cur, size = append(cur, n), size+line
	}
	if len(cur) > 0 {
		batches = append(batches, cur)
	}
	return batches
}

// probeSpellings are the ways a probe forges each name: three spellings, and as trailers (a
// proxy that merges request trailers into the header would pass those on as headers).
var probeSpellings = []struct {
	name    string
	spell   func(string) string
	trailer bool
}{
	{"canonical", http.CanonicalHeaderKey, false},
	{"lower-case", strings.ToLower, false},
	{"underscore", func(n string) string { return strings.ReplaceAll(http.CanonicalHeaderKey(n), "-", "_") }, false},
	{"trailer", http.CanonicalHeaderKey, true},
}

// probeSetup checks the arguments of ProbeProxy and returns the URL and the names to forge.
func probeSetup(client *http.Client, rawURL string, extra []string) (*url.URL, []string, error) {
	if client == nil {
		return nil, nil, errors.New("mtls: proxy probe: nil client")
	}
	u, err := url.Parse(rawURL)
	if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
		return nil, nil, fmt.Errorf("mtls: proxy probe: %q is not an http(s) URL", rawURL)
	}
	for _, n := range extra {
		if !validHeaderName(n) {
			return nil, nil, fmt.Errorf("mtls: proxy probe: invalid header name %q", n)
		}
	}
	return u, ProbeHeaderNames(extra...), nil
}

// ProbeHeaderNames returns the header names [ProbeProxy] forges, canonical and sorted: the
// headers of every preset format, their companion headers, and extra. Names that differ only in
// case or punctuation (see [HeaderConfig.CompanionHeaders]) are given once.
func ProbeHeaderNames(extra ...string) []string {
	var all []string
	for _, n := range HeaderFormatNames() {
		f := MustHeaderFormat(n)
		all = append(all, f.HeaderNames()...)
		if c, ok := f.(interface{ CompanionHeaders() []string }); ok {
			all = append(all, c.CompanionHeaders()...)
		}
	}
	all = append(all, extra...)
	var names []string
	for _, n := range all {
		if !slices.ContainsFunc(names, func(m string) bool { return certheader.SameName(m, n) }) {
			names = append(names, http.CanonicalHeaderKey(n))
		}
	}
	slices.Sort(names)
	return names
}

// validHeaderName says whether n is a header field name (an RFC 9110 token).
func validHeaderName(n string) bool {
	if n == "" {
		return false
	}
	for i := 0; i < len(n); i++ {
		c := n[i]
		if !('0' <= c && c <= '9' || 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || strings.IndexByte("!#$%&'*+-.^_`|~", c) >= 0) {
			return false
		}
	}
	return true
}

// probeOnce sends one probe request forging names, spelled by spell, in its header or, with
// trailer, in trailers after a one-byte chunked body; and reads the answer.
func probeOnce(ctx context.Context, client *http.Client, base *url.URL, names []string, spell func(string) string, trailer bool) ProbeResult {
	var res ProbeResult
	token, err := newProbeToken()
	if err != nil {
		res.Err = err
		return res
	}
	u := *base
	q := probeTokenParam + "=" + token
	if u.RawQuery != "" {
		q = u.RawQuery + "&" + q
	}
	u.RawQuery = q
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u.String(), nil)
	if err != nil {
		res.Err = fmt.Errorf("mtls: proxy probe: %w", err)
		return res
	}
	canary := ProbeCanaryPrefix + token
	into := req.Header
	if trailer {
		req.Body, req.ContentLength = io.NopCloser(strings.NewReader("\n")), -1 // chunked
		req.Trailer = http.Header{}
		into = req.Trailer
	}
	res.Forged = make([]string, len(names))
	for i, n := range names {
		res.Forged[i] = spell(n)
		into[res.Forged[i]] = []string{canary} // as spelled: Set would canonicalise
	}
	res.Sent = len(names)
	resp, err := client.Do(req)
	if err != nil {
		res.Err = fmt.Errorf("mtls: proxy probe: %w", err)
		return res
	}
	defer resp.Body.Close()
	res.Status = resp.StatusCode
	body, err := io.ReadAll(io.LimitReader(resp.Body, probeMaxAnswer+1))
	if err != nil {
		res.Err = fmt.Errorf("mtls: proxy probe: reading the answer: %w", err)
		return res
	}
	if resp.StatusCode != http.StatusOK {
		res.Err = fmt.Errorf("mtls: proxy probe: status %d, not the probe's answer", resp.StatusCode)
		return res
	}
	a, err := parseProbeAnswer(body, token)
	if err != nil {
		res.Err = err
		return res
	}
	res.Answered, res.TrustedProxy, res.Arrived, res.Truncated = true, a.TrustedProxy, a.Headers, a.Truncated
	return res
}

// newProbeToken returns a random canary token.
func newProbeToken() (string, error) {
	b := make([]byte, probeTokenEntropy)
	if _, err := rand.Read(b); err != nil {
		return "", fmt.Errorf("mtls: proxy probe: %w", err)
	}
	return hex.EncodeToString(b), nil
}

// parseProbeAnswer parses the probe's answer to the request with token: at most probeMaxAnswer
// bytes, one JSON object of this probe's version and token, with at most probeMaxNames header
// names that are valid names.
func parseProbeAnswer(body []byte, token string) (probeAnswer, error) {
	var a probeAnswer
	if len(body) > probeMaxAnswer {
		return a, fmt.Errorf("mtls: proxy probe: answer larger than %d bytes", probeMaxAnswer)
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	if err := dec.Decode(&a); err != nil {
		return probeAnswer{}, fmt.Errorf("mtls: proxy probe: not the probe's answer: %w", err)
	}
	if dec.More() {
		return probeAnswer{}, errors.New("mtls: proxy probe: not the probe's answer: data after the object")
	}
	switch {
	case a.Probe != probeVersion:
		return probeAnswer{}, fmt.Errorf("mtls: proxy probe: not the probe's answer (probe %q)", a.Probe)
	case a.Canary != token:
		return probeAnswer{}, errors.New("mtls: proxy probe: the answer is for another request (a cache between client and service?)")
	case len(a.Headers) > probeMaxNames:
		return probeAnswer{}, fmt.Errorf("mtls: proxy probe: answer names %d headers, at most %d", len(a.Headers), probeMaxNames)
	}
	for _, n := range a.Headers {
		if !validHeaderName(n) || len(n) > probeMaxNameLen {
			return probeAnswer{}, fmt.Errorf("mtls: proxy probe: answer names an invalid header %q", n)
		}
	}
	return a, nil
}
