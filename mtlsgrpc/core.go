package mtlsgrpc

import (
	"context"
	"net/http"
	"net/netip"
	"net/textproto"

	"github.com/certgate/mtls"
)

// INTERIM: replaced by mtls.Call and Middleware.Decide once the root has them.

func routePolicy(_ *mtls.Middleware, p mtls.Policy) mtls.Policy { return p }

func (i *Interceptor) decide(ctx context.Context, fullMethod string) (*mtls.Identity, error) {
	c := connectionOf(ctx)
	md := incoming(ctx)
	r, _ := http.NewRequestWithContext(ctx, http.MethodPost, "/", http.NoBody)
	r.TLS = c.tls
	if c.addr.IsValid() {
		r.RemoteAddr = netip.AddrPortFrom(c.addr, 1).String()
	} else {
		r.RemoteAddr = ""
	}
	if a := md[":authority"]; len(a) > 0 {
		r.Host = a[0]
	}
	r.Header = http.Header{}
	for k, v := range md {
		if k != "" && k[0] == ':' {
			continue
		}
		r.Header[textproto.CanonicalMIMEHeaderKey(k)] = v
	}
	id, err := i.m.Authenticate(r)
	if err != nil || id == nil {
		return id, err
	}
	if p := i.policyOf(fullMethod); p != nil {
		if perr := p.Check(id); perr != nil {
			return nil, &mtls.Error{Kind: mtls.ErrDenied, Err: perr, Leaf: id.Leaf, Step: "policy"}
		}
	}
	return id, nil
}

func (i *Interceptor) stripped(ctx context.Context, _ *mtls.Identity) context.Context { return ctx }
