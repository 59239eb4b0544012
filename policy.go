package mtls

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"sync/atomic"
	"time"

	"github.com/certgate/mtls/internal/match"
)

// Policy decides whether a verified identity may proceed. Check returns nil to allow, or an error
// saying which rule refused (for logs and the error hook; clients only see "policy_denied").
// Policies are evaluated on every request and must be safe for concurrent use.
//
// The policies built by this package ([All], [Any], [Not] and the Require* matchers) are
// immutable, allocate nothing when they allow (except to normalise a URI SAN that may not be in
// canonical form, such as one with escapes, user info or an IPv6 host, and to unquote a quoted
// email local part), match the leaf certificate only (never a CA of
// the chain, except [RequireIssuerThumbprints]), refuse an identity without a leaf, and implement
// [json.Marshaler], writing the document form that [ParsePolicy] reads.
//
// Constructors whose input can be invalid (patterns, hexadecimal, object identifiers) return
// (Policy, error) and never panic; wrap them in [Must] for policies written as literals in code.
// The combinators cannot fail and return a Policy.
type Policy interface {
	Check(id *Identity) error
}

// PolicyFunc adapts a function to [Policy].
type PolicyFunc func(id *Identity) error

// Check calls f(id).
func (f PolicyFunc) Check(id *Identity) error { return f(id) }

// Must returns p, and panics if err is not nil. It is meant for policies written as literals in
// code, where an error is a bug found at start-up:
//
//	var admins = mtls.Must(mtls.RequireSubject(mtls.Attributes{"ou": {"admins"}}))
//
// Policies read from configuration should use the error instead.
func Must(p Policy, err error) Policy {
	if err != nil {
		panic(err)
	}
	return p
}

// denial is the reason a policy of this package refuses. Its text is computed when the policy is
// built, so that refusing allocates nothing either.
type denial struct{ msg string }

func (d *denial) Error() string { return d.msg }

// detail is the message without the package prefix, for [Error.Detail].
func (d *denial) detail() string { return strings.TrimPrefix(d.msg, "mtls: ") }

var (
	errNoLeaf    = &denial{"mtls: no verified certificate to evaluate"}
	errEmptyAll  = &denial{"mtls: not matched: all() of no policies"}
	errEmptyAny  = &denial{"mtls: not matched: any() of no policies"}
	errNilPolicy = &denial{"mtls: not matched: nil policy"}
)

func hasLeaf(id *Identity) bool { return id != nil && id.Leaf != nil }

// matcher is a policy that can answer without building a reason. eval and match are only called
// with an identity that has a leaf; match is eval(id) == yes.
type matcher interface {
	Policy
	eval(id *Identity) verdict
	match(id *Identity) bool
}

// asMatcher lets any Policy take part in the combinators.
func asMatcher(p Policy) matcher {
	switch p := p.(type) {
	case nil:
		return nilPolicy{}
	case PolicyFunc:
		if p == nil {
			return nilPolicy{}
		}
	case matcher:
		return p
	}
	return foreign{p}
}

// nilPolicy stands for a nil Policy given to a combinator: it refuses everything.
type nilPolicy struct{}

func (nilPolicy) Check(*Identity) error  { return errNilPolicy }
func (nilPolicy) match(*Identity) bool   { return false }
func (nilPolicy) eval(*Identity) verdict { return no }
func (nilPolicy) String() string         { return "nil" }
func (nilPolicy) MarshalJSON() ([]byte, error) {
	return nil, errors.New("mtls: a nil policy has no document form")
}

// foreign wraps a Policy of the caller's own.
type foreign struct{ p Policy }

func (f foreign) Check(id *Identity) error  { return f.p.Check(id) }
func (f foreign) match(id *Identity) bool   { return f.p.Check(id) == nil }
func (f foreign) eval(id *Identity) verdict { return match.Of(f.match(id)) }
func (f foreign) String() string            { return fmt.Sprintf("%T", f.p) }
func (f foreign) MarshalJSON() ([]byte, error) {
	if jm, ok := f.p.(json.Marshaler); ok {
		return jm.MarshalJSON()
	}
	return nil, fmt.Errorf("mtls: a policy of type %T has no document form", f.p)
}

// rule is every attribute matcher: a predicate built once, its document form and its reason.
type rule struct {
	key  string // document key
	val  any    // document value, normalised
	desc string
	deny *denial
	fn   func(id *Identity) bool
	fn3  func(id *Identity) verdict // instead of fn, for rules that can be undecided
	// clocked, for a rule that reads the time and was built without a clock, builds it again
	// with one (see withClock).
	clocked func(now func() time.Time) *rule
}

func newRule(key string, val any, fn func(id *Identity) bool) *rule {
	b, err := json.Marshal(val)
	if err != nil { // values are strings, lists and maps of strings
		panic("mtls: internal error: " + err.Error())
	}
	desc := key + " " + string(b)
	return &rule{key: key, val: val, desc: desc, fn: fn, deny: &denial{"mtls: not matched: " + desc}}
}

// Check allows when the identity matches the rule.
func (r *rule) Check(id *Identity) error {
	if !hasLeaf(id) {
		return errNoLeaf
	}
	if r.match(id) {
		return nil
	}
	return r.deny
}

func (r *rule) match(id *Identity) bool { return r.eval(id) == yes }

func (r *rule) eval(id *Identity) verdict {
	if r.fn3 != nil {
		return r.fn3(id)
	}
	return match.Of(r.fn(id))
}

// String describes the rule, as in the refusal reasons.
func (r *rule) String() string { return r.desc }

// MarshalJSON writes the rule as a policy document.
func (r *rule) MarshalJSON() ([]byte, error) {
	return json.Marshal(map[string]any{r.key: r.val})
}

// All allows an identity that every one of ps allows; its refusal is the first refusal, in order.
// All of no policies refuses everything (an empty rule set is more likely a mistake than an
// intention), and so does a nil policy among ps.
func All(ps ...Policy) Policy {
	ms := matchers(ps)
	return &allOf{ps: ms, broken: anyBroken(ms)}
}

// Any allows an identity that at least one of ps allows, trying them in order. Its refusal lists
// every alternative's reason. Any of no policies refuses everything; a nil policy among ps never
// matches.
func Any(ps ...Policy) Policy {
	ms := matchers(ps)
	return &anyOf{ps: ms, broken: anyBroken(ms)}
}

// Not allows an identity that p refuses, and refuses one that p allows. An identity without a
// leaf certificate is refused all the same. Only negate policies whose refusal means "does not
// match" (every matcher of this package): a policy of your own that refuses because it could not
// decide would be turned into an allowance. Not(nil) refuses everything, like nil itself: a
// policy whose construction failed must not turn into "allow all". So does the negation of a
// policy holding, at any depth, a nil policy or an All or Any of no policies (such as
// Not(Any(contractors, nil))). An identity the matchers of this package cannot judge either way
// is refused by p and by Not(p) alike: a subject holding a single-valued attribute twice, one
// value listed; a subject or issuer value equal to a listed one but for case, spaces, full-width
// forms or ignorable characters (see [RequireSubject]); a DNS name, email domain, URI or SPIFFE ID
// spelled in a form equivalent to a listed one (a trailing dot, a wildcard SAN, escapes, dot
// segments, case, user info, a default or empty port, an empty path, an IPv6 address written
// otherwise, a backslash, a second URI SAN); an email local part differing only in ASCII case or
// quoted; an IPv6 SAN embedding an IPv4 address (IPv4-mapped, NAT64, 6to4, IPv4-compatible) under
// an IPv4 rule holding it; anyExtendedKeyUsage for a usage not listed; an extension value that is
// not a readable string; an issuer that the chain does not show. A deny list written with Not
// cannot be stepped around by these spellings; for names, spellings equivalent only under Unicode
// normalisation are not recognised (see RequireSubject), and extension values compare exactly.
func Not(p Policy) Policy {
	m := asMatcher(p)
	if _, isNil := m.(nilPolicy); isNil {
		return m
	}
	if broken(m) {
		return &notOf{p: m, broken: true,
			deny: &denial{"mtls: not matched: not " + describe(m) + ": refuses everything, as it holds a nil policy or an empty all() or any()"}}
	}
	return &notOf{p: m, deny: &denial{"mtls: not matched: not " + describe(m)}}
}

// broken reports whether m holds, at any depth, a nil policy or an empty All or Any: the
// placeholders of a mistake, which refuse everything and must not be negated into allowances.
func broken(m matcher) bool {
	switch m := m.(type) {
	case nilPolicy:
		return true
	case *allOf:
		return m.broken
	case *anyOf:
		return m.broken
	case *notOf:
		return m.broken
	}
	return false
}

func anyBroken(ms []matcher) bool {
	if len(ms) == 0 {
		return true
	}
	for _, m := range ms {
		if broken(m) {
			return true
		}
	}
	return false
}

func matchers(ps []Policy) []matcher {
	out := make([]matcher, len(ps))
	for i, p := range ps {
		out[i] = asMatcher(p)
	}
	return out
}

func describe(p Policy) string {
	if s, ok := p.(fmt.Stringer); ok {
		return s.String()
	}
	return fmt.Sprintf("%T", p)
}

type allOf struct {
	ps     []matcher
	broken bool
}

func (a *allOf) Check(id *Identity) error {
	if !hasLeaf(id) {
		return errNoLeaf
	}
	if len(a.ps) == 0 {
		return errEmptyAll
	}
	for _, p := range a.ps {
		if err := p.Check(id); err != nil {
			return err
		}
	}
	return nil
}

func (a *allOf) match(id *Identity) bool { return a.eval(id) == yes }

func (a *allOf) eval(id *Identity) verdict {
	if len(a.ps) == 0 {
		return no
	}
	v := yes
	for _, p := range a.ps {
		switch p.eval(id) {
		case no:
			return no
		case undecided:
			v = undecided
		}
	}
	return v
}

func (a *allOf) String() string { return "all(" + joinDesc(a.ps) + ")" }

func (a *allOf) MarshalJSON() ([]byte, error) { return marshalList("all", a.ps) }

type anyOf struct {
	ps     []matcher
	broken bool
}

func (a *anyOf) Check(id *Identity) error {
	if !hasLeaf(id) {
		return errNoLeaf
	}
	if len(a.ps) == 0 {
		return errEmptyAny
	}
	if a.match(id) {
		return nil
	}
	// Refusal path: spell out every alternative (this may allocate).
	reasons := make([]string, 0, len(a.ps))
	for _, p := range a.ps {
		if err := p.Check(id); err != nil {
			reasons = append(reasons, strings.TrimPrefix(strings.TrimPrefix(err.Error(), "mtls: "), "not matched: "))
		}
	}
	return &denial{"mtls: not matched: any of (" + strings.Join(reasons, "; ") + ")"}
}

func (a *anyOf) match(id *Identity) bool { return a.eval(id) == yes }

func (a *anyOf) eval(id *Identity) verdict {
	v := no
	for _, p := range a.ps {
		switch p.eval(id) {
		case yes:
			return yes
		case undecided:
			v = undecided
		}
	}
	return v
}

func (a *anyOf) String() string { return "any(" + joinDesc(a.ps) + ")" }

func (a *anyOf) MarshalJSON() ([]byte, error) { return marshalList("any", a.ps) }

type notOf struct {
	p      matcher
	deny   *denial
	broken bool // refuses everything, see Not
}

func (n *notOf) Check(id *Identity) error {
	if !hasLeaf(id) {
		return errNoLeaf
	}
	if n.eval(id) != yes {
		return n.deny
	}
	return nil
}

func (n *notOf) match(id *Identity) bool { return n.eval(id) == yes }

func (n *notOf) eval(id *Identity) verdict {
	if n.broken {
		return no
	}
	switch n.p.eval(id) {
	case no:
		return yes
	case yes:
		return no
	}
	return undecided
}

func (n *notOf) String() string { return "not " + describe(n.p) }

func (n *notOf) MarshalJSON() ([]byte, error) {
	b, err := json.Marshal(n.p)
	if err != nil {
		return nil, err
	}
	return json.Marshal(map[string]json.RawMessage{"not": b})
}

// withClock returns p with now as the clock of the rules of this package that were built without
// one (a document's min_validity, RequireMinValidity with a nil clock), at any depth of All, Any
// and Not; changed is false, and p returned as it is, when p holds none. p itself, shared and
// immutable, is not modified. Policies of the caller's own are left alone.
func withClock(p Policy, now func() time.Time) (_ Policy, changed bool) {
	switch p := p.(type) {
	case *rule:
		if p.clocked != nil {
			return p.clocked(now), true
		}
	case *allOf:
		if ps, changed := withClocks(p.ps, now); changed {
			return &allOf{ps: ps, broken: p.broken}, true
		}
	case *anyOf:
		if ps, changed := withClocks(p.ps, now); changed {
			return &anyOf{ps: ps, broken: p.broken}, true
		}
	case *notOf:
		if q, changed := withClock(p.p, now); changed {
			n := *p
			n.p = q.(matcher)
			return &n, true
		}
	case *filePolicy:
		if q, changed := withClock(p.p, now); changed {
			f := *p
			f.p = q.(matcher)
			return &f, true
		}
	}
	return p, false
}

func withClocks(ms []matcher, now func() time.Time) ([]matcher, bool) {
	var out []matcher
	for i, m := range ms {
		q, changed := withClock(m, now)
		if !changed {
			continue
		}
		if out == nil {
			out = append([]matcher(nil), ms...)
		}
		out[i] = q.(matcher)
	}
	return out, out != nil
}

func joinDesc(ps []matcher) string {
	parts := make([]string, len(ps))
	for i, p := range ps {
		parts[i] = describe(p)
	}
	return strings.Join(parts, ", ")
}

func marshalList(key string, ps []matcher) ([]byte, error) {
	list := make([]json.RawMessage, len(ps))
	for i, p := range ps {
		b, err := json.Marshal(p)
		if err != nil {
			return nil, err
		}
		list[i] = b
	}
	return json.Marshal(map[string][]json.RawMessage{key: list})
}

// Require returns middleware for one route or group of routes that lets a request through only
// if the identity placed by [Middleware.Handler] satisfies p. Use it below the router-wide
// Handler:
//
//	r.Use(m.Handler)                               // chi: every route needs a certificate
//	r.With(m.Require(admins)).Post("/admin", h)    // this one also needs the admins policy
//
//	mux.Handle("/admin", m.Handler(m.Require(admins)(h)))   // net/http
//
// A request without an identity (no certificate in optional mode, or a handler not wrapped by
// Handler) is refused with 401 "certificate_required"; a refusal by p is an [*Error] of kind
// [ErrDenied] (403 "policy_denied") wrapping p's reason, handed to the logger and the error
// handler; the client learns only the reason code. Below Handler, [Middleware.Either] or
// [Middleware.Both] of the same middleware, the request still yields one [Event]: the refusal,
// with its step and rule, takes the place of the acceptance (see [Config.OnDecision] for when the
// acceptance is reported). Build the routes before serving: a request that was accepted before
// the first route policy of the middleware was built was reported at once, and a refusal of it
// by a route policy goes to the error handler without an event of its own.
//
// A policy read by [LoadPolicyFile] follows the middleware's reloads, whether p is that policy or
// holds it inside [All], [Any] or [Not] (not inside a policy of your own): [Middleware.Reload]
// and the polling of [Config.ReloadInterval] read its file again with the rest of the
// configuration and swap it in at once with them, or keep it all as it was if one file is bad.
// A file is read once per reload, however many policies hold it; a middleware reloads at most
// 1024 distinct route policy files, and Require panics beyond that. Below a handler of the same
// middleware, a request is judged by the route's policy as loaded with the trust that verified
// it; a request that no handler of the middleware accepted (an identity placed by [NewContext],
// from [Middleware.Authenticate]) is judged by the policy as loaded now. Require panics if p is
// nil, as a programming error found when the routes are built.
func (m *Middleware) Require(p Policy) func(http.Handler) http.Handler {
	if p == nil {
		panic("mtls: Require called with a nil policy")
	}
	rp := m.routePolicy(p)
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			pd := m.pendingOf(r)
			var e *Error
			if id, ok := FromContext(r.Context()); !ok {
				e = newError(ErrNoCertificate, "the route requires a client certificate", nil)
				e.Step = stepClaim
			} else if err := rp.in(pd).Check(id); err != nil {
				e = deniedError(id, "", err)
				e.Step = stepPolicy
			}
			if e != nil {
				m.refuseRoute(w, r, pd, e)
				return
			}
			next.ServeHTTP(w, r)
		})
	}
}

// Shadow returns middleware that evaluates p on the identity of each request as a dry run: the
// outcome goes to [Config.OnShadow] and the logger (see [Config.ShadowPolicy]) and the request
// always goes on. Requests without an identity are not evaluated. It is the per-route counterpart
// of Config.ShadowPolicy, for trying a stricter rule before enforcing it with [Middleware.Require].
// Below a handler of the same middleware, a refusal it would make is also the ShadowErr of the
// request's one [Event] (then AcceptedDegraded), as one of ShadowPolicy is. A policy read by
// [LoadPolicyFile] follows the middleware's reloads, as with Require.
func (m *Middleware) Shadow(p Policy) func(http.Handler) http.Handler {
	if p == nil {
		panic("mtls: Shadow called with a nil policy")
	}
	rp := m.routePolicy(p)
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if id, ok := FromContext(r.Context()); ok {
				pd := m.pendingOf(r)
				c := callOf(r)
				if err := m.reportShadow(&c, rp.in(pd), id, nil); err != nil && pd != nil {
					pd.shadowed(err)
				}
			}
			next.ServeHTTP(w, r)
		})
	}
}

// routePolicy is a policy of Require or Shadow, ready for the middleware: with its clock, and,
// when it holds policy files, as loaded with each state.
type routePolicy struct {
	m     *Middleware
	fixed Policy // the policy, when it holds no policy file
	tree  Policy // the policy as given, holding files
	cur   atomic.Pointer[resolvedPolicy]
}

// resolvedPolicy is a route's policy with the files as loaded with the state of generation gen
// (a number, so that the route holds no state, its trust and cached outcomes, once replaced).
type resolvedPolicy struct {
	gen uint64
	p   Policy
}

// routePolicy prepares p for a route, and registers the policy files it holds for reloading.
func (m *Middleware) routePolicy(p Policy) *routePolicy {
	if !m.routes.Load() {
		m.routes.Store(true) // the handlers' acceptances wait for the routes (observe.go)
	}
	return m.preparedPolicy(p)
}

// preparedPolicy prepares p for a route or a call (CallPolicy), and registers the policy files
// it holds for reloading.
func (m *Middleware) preparedPolicy(p Policy) *routePolicy {
	files := policyFilesOf(p, nil)
	if len(files) == 0 {
		p, _ = withClock(p, m.now)
		return &routePolicy{m: m, fixed: p}
	}
	m.watchPolicyFiles(files)
	return &routePolicy{m: m, tree: p}
}

// in returns the route's policy for a request: as loaded with the state the request was
// verified under (pd's), or with the state in force for a request no handler of m accepted.
func (rp *routePolicy) in(pd *pending) Policy {
	if rp.fixed != nil {
		return rp.fixed
	}
	st := rp.m.state.Load()
	if pd != nil && pd.d.st != nil {
		st = pd.d.st
	}
	return rp.under(st)
}

// under returns the route's policy as loaded with the state st.
func (rp *routePolicy) under(st *state) Policy {
	if rp.fixed != nil {
		return rp.fixed
	}
	if r := rp.cur.Load(); r != nil && r.gen == st.gen {
		return r.p
	}
	p, _ := withClock(substitute(rp.tree, func(f *filePolicy) Policy {
		if q, ok := st.routeFiles[f.path]; ok && !f.read.After(q.read) {
			return q.p
		}
		return f.p // not reloaded since LoadPolicyFile read it: as it read it
	}), rp.m.now)
	if st == rp.m.state.Load() { // a request of an older state does not evict the current one
		rp.cur.Store(&resolvedPolicy{gen: st.gen, p: p})
	}
	return p
}

// policyFilesOf appends to out the policy files p holds, itself or inside All, Any and Not, each
// once.
func policyFilesOf(p Policy, out []*filePolicy) []*filePolicy {
	switch p := p.(type) {
	case *filePolicy:
		if !slices.Contains(out, p) {
			out = append(out, p)
		}
	case *allOf:
		for _, q := range p.ps {
			out = policyFilesOf(q, out)
		}
	case *anyOf:
		for _, q := range p.ps {
			out = policyFilesOf(q, out)
		}
	case *notOf:
		out = policyFilesOf(p.p, out)
	}
	return out
}

// substitute returns p with each policy file it holds replaced by load's policy for it, the
// combinators built again (their reasons name what they hold).
func substitute(p Policy, load func(*filePolicy) Policy) Policy {
	switch p := p.(type) {
	case *filePolicy:
		return load(p)
	case *allOf:
		return All(substituteAll(p.ps, load)...)
	case *anyOf:
		return Any(substituteAll(p.ps, load)...)
	case *notOf:
		if p.broken {
			return p // refuses everything, whatever it holds
		}
		return Not(substitute(p.p, load))
	}
	return p
}

func substituteAll(ms []matcher, load func(*filePolicy) Policy) []Policy {
	out := make([]Policy, len(ms))
	for i, m := range ms {
		out[i] = substitute(m, load)
	}
	return out
}

// ShadowResult is one evaluation of a shadow policy, handed to [Config.OnShadow].
type ShadowResult struct {
	// Identity is the evaluated identity (shared between requests: read-only).
	Identity *Identity
	// Err is the shadow policy's reason for refusing; nil means it would allow the request.
	Err error
	// Enforced is the reason the enforced policy refused the request; nil means the request was
	// allowed by the enforced policy (or there is none).
	Enforced error
}

// WouldAllow reports whether the shadow policy would let the request through.
func (s ShadowResult) WouldAllow() bool { return s.Err == nil }

// Disagrees reports whether enforcing the shadow policy would change the outcome of the request.
func (s ShadowResult) Disagrees() bool { return (s.Err == nil) != (s.Enforced == nil) }

// policyRuntime is what Config.Policy, ShadowPolicy, OnShadow and Principals configure.
type policyRuntime struct {
	policy     Policy
	shadow     Policy
	onShadow   func(*http.Request, ShadowResult)
	principals PrincipalResolver
}

// deniedError wraps a policy's reason in an *Error of kind ErrDenied.
func deniedError(id *Identity, what string, reason error) *Error {
	var e *Error
	if d, ok := reason.(*denial); ok {
		detail := d.detail()
		if what != "" {
			detail = what + ": " + detail
		}
		e = newError(ErrDenied, detail, nil)
	} else {
		e = newError(ErrDenied, what, reason)
	}
	if id != nil {
		e.Leaf = id.Leaf
	}
	return e
}
