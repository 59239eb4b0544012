package mtlsgrpc

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/certgate/mtls"
)

// Option configures an [Interceptor].
type Option func(*options)

type options struct {
	policies []methodPolicy
	def      mtls.Policy
	open     []string
	onShadow func(context.Context, mtls.ShadowResult)
	errs     []error
}

type methodPolicy struct {
	pattern string
	p       mtls.Policy
}

// WithPolicy makes the calls of pattern pass p too, after [mtls.Config.Policy], in the same
// decision: a refusal is PermissionDenied "policy_denied", one event. pattern is a full method
// name, "/pkg.Service/Method", or a service, "/pkg.Service/", for each of its methods that has
// no policy of its own. Names are compared as gRPC sends them, case and all: a pattern that
// names no method of the server applies to no call, which [Interceptor.Check] reports. A policy
// read by [mtls.LoadPolicyFile] follows the middleware's reloads as one of
// [mtls.Middleware.Require] does.
func WithPolicy(pattern string, p mtls.Policy) Option {
	return func(o *options) {
		if p == nil {
			o.errs = append(o.errs, &mtls.ConfigError{Field: "WithPolicy", Err: fmt.Errorf("mtls: nil policy for %q", pattern)})
			return
		}
		o.policies = append(o.policies, methodPolicy{pattern, p})
	}
}

// WithDefaultPolicy makes every call whose method and service have no policy of their own
// ([WithPolicy]) pass p too.
func WithDefaultPolicy(p mtls.Policy) Option {
	return func(o *options) {
		if p == nil {
			o.errs = append(o.errs, &mtls.ConfigError{Field: "WithDefaultPolicy", Err: errors.New("mtls: nil policy")})
			return
		}
		o.def = p
	}
}

// WithoutCertificate lets the calls of each of the full method names, such as
// "/grpc.health.v1.Health/Check", through without any check: no certificate is asked for or
// verified, the handler sees no identity, and no event is reported. The certificate metadata of
// header mode is still removed from what the handler sees. Only full method names are taken,
// never a service or a prefix: each method open to anyone is named, once. A method that a
// [WithPolicy] pattern names, by itself or by its service, is not taken either: open, its policy
// would never run. No method is open by default.
func WithoutCertificate(fullMethods ...string) Option {
	return func(o *options) { o.open = append(o.open, fullMethods...) }
}

// WithOnShadow receives the outcome of [mtls.Config.ShadowPolicy] for each call, with the call's
// context, in place of [mtls.Config.OnShadow] (which takes an *http.Request, and is not called
// for gRPC calls).
func WithOnShadow(f func(ctx context.Context, res mtls.ShadowResult)) Option {
	return func(o *options) { o.onShadow = f }
}

// kind of pattern.
const (
	notMethod = iota
	fullMethod
	servicePattern
)

// patternKind says whether s is a full method name ("/pkg.Service/Method"), a service
// ("/pkg.Service/") or neither. Names are taken as gRPC sends them: no spaces, no further
// slashes, no empty part.
func patternKind(s string) int {
	rest, ok := strings.CutPrefix(s, "/")
	if !ok {
		return notMethod
	}
	service, method, ok := strings.Cut(rest, "/")
	if !ok || service == "" || strings.ContainsAny(method, "/") || strings.ContainsAny(s, " \t\r\n") {
		return notMethod
	}
	if method == "" {
		return servicePattern
	}
	return fullMethod
}

// compile checks the options and builds the interceptor's tables.
func (o *options) compile(i *Interceptor) error {
	errs := o.errs
	i.exact, i.services = map[string]mtls.Policy{}, map[string]mtls.Policy{}
	for _, mp := range o.policies {
		var table map[string]mtls.Policy
		switch patternKind(mp.pattern) {
		case fullMethod:
			table = i.exact
		case servicePattern:
			table = i.services
		default:
			errs = append(errs, &mtls.ConfigError{Field: "WithPolicy", Err: fmt.Errorf(
				"mtls: %q is neither a full method name (\"/pkg.Service/Method\") nor a service (\"/pkg.Service/\")", mp.pattern)})
			continue
		}
		if _, dup := table[mp.pattern]; dup {
			errs = append(errs, &mtls.ConfigError{Field: "WithPolicy", Err: fmt.Errorf("mtls: two policies for %q", mp.pattern)})
			continue
		}
		table[mp.pattern] = i.m.CallPolicy(mp.p)
	}
	if o.def != nil {
		i.def = i.m.CallPolicy(o.def)
	}
	i.open = map[string]bool{}
	for _, name := range o.open {
		switch {
		case patternKind(name) != fullMethod:
			errs = append(errs, &mtls.ConfigError{Field: "WithoutCertificate", Err: fmt.Errorf(
				"mtls: %q is not a full method name (\"/pkg.Service/Method\"): services and prefixes are not taken", name)})
		case i.open[name]:
			errs = append(errs, &mtls.ConfigError{Field: "WithoutCertificate", Err: fmt.Errorf("mtls: %q is named twice", name)})
		case i.exact[name] != nil:
			errs = append(errs, &mtls.ConfigError{Field: "WithoutCertificate", Err: fmt.Errorf(
				"mtls: %q has a policy (WithPolicy) and is callable without a certificate", name)})
		case i.services[name[:lastSlash(name)+1]] != nil:
			errs = append(errs, &mtls.ConfigError{Field: "WithoutCertificate", Err: fmt.Errorf(
				"mtls: the service of %q has a policy (WithPolicy %q) and the method is callable without a certificate", name, name[:lastSlash(name)+1])})
		default:
			i.open[name] = true
		}
	}
	i.onShadow = o.onShadow
	return errors.Join(errs...)
}
