package mtlsgrpc

import (
	"context"

	"github.com/certgate/mtls"
	"google.golang.org/grpc/metadata"
)

// transport names gRPC in the events ([mtls.Event.Transport]).
const transport = "grpc"

// decide runs the middleware's pipeline on the call of fullMethod whose server context is ctx,
// and returns the identity (nil in optional mode without a certificate), the refusal, and the
// call's metadata (nil when it has none): the copy that was read, to strip.
func (i *Interceptor) decide(ctx context.Context, fullMethod string) (*mtls.Identity, metadata.MD, error) {
	conn := connectionOf(ctx)
	var md metadata.MD
	if i.m.HeaderMode() {
		md, _ = metadata.FromIncomingContext(ctx) // a copy, with lower-case keys
	}
	c := mtls.Call{
		Context:       ctx,
		TLS:           conn.tls,
		Peer:          conn.addr,
		Fields:        md,
		LowerCaseKeys: true,
		Transport:     transport,
		Method:        fullMethod,
		Policy:        i.policyOf(fullMethod),
		OnShadow:      i.onShadow,
	}
	a := md[":authority"]
	if md == nil {
		a = metadata.ValueFromIncomingContext(ctx, ":authority") // one value, not the whole metadata
		// A host field beside :authority (net/http's HTTP/2 server keeps it, and ServeHTTP
		// copies it into the metadata; grpc-go's own transport drops it) must name the same
		// authority: the middleware checks the Host of Fields.
		if h := metadata.ValueFromIncomingContext(ctx, "host"); len(h) > 0 {
			c.Fields = map[string][]string{"host": h}
		}
	}
	if len(a) > 0 {
		c.Authority = a[0]
	}
	id, err := i.m.Decide(&c)
	return id, md, err
}

// stripped returns ctx with the incoming metadata md less the certificate metadata of header
// mode, unless id came from it; ctx itself when there is nothing to remove.
func (i *Interceptor) stripped(ctx context.Context, md metadata.MD, id *mtls.Identity) context.Context {
	f, ok := i.m.StripCertificateFields(md, id)
	if !ok {
		return ctx
	}
	return metadata.NewIncomingContext(ctx, f)
}
