package mtlsgrpc

import (
	"context"
	"strings"

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
// mode, unless id came from it, and less the binary copies of its names (binCopies) whatever
// id is; ctx itself when there is nothing to remove. md is the call's own copy
// (metadata.FromIncomingContext makes one), which it may modify.
func (i *Interceptor) stripped(ctx context.Context, md metadata.MD, id *mtls.Identity) context.Context {
	f, ok := i.m.StripCertificateFields(md, id)
	if binCopies(i.m, f) {
		ok = true
	}
	if !ok {
		return ctx
	}
	return metadata.NewIncomingContext(ctx, f)
}

// binCopies deletes from md each key "<name>-bin" whose <name> is one of the certificate
// metadata of header mode, under any spelling, and says whether it deleted any. grpc-go decodes
// the base64 of such metadata, so that a handler reading it would read the certificate field a
// client sent in base64 under that name; the middleware never reads it (a certificate name
// ending in "-bin" refuses every call), and no trusted proxy sets it in its stead, so it is
// removed whoever sent it. Each "-bin" key is asked of StripCertificateFields alone, in one map
// reused for all of them: the names of the family are the middleware's own.
func binCopies(m *mtls.Middleware, md metadata.MD) bool {
	var probe map[string][]string
	removed := false
	for k := range md {
		name, ok := strings.CutSuffix(k, "-bin")
		if !ok || name == "" {
			continue
		}
		if probe == nil {
			probe = make(map[string][]string, 1)
		}
		clear(probe)
		probe[name] = nil
		if _, in := m.StripCertificateFields(probe, nil); in {
			delete(md, k)
			removed = true
		}
	}
	return removed
}
