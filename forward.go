package mtls

import (
	"bytes"
	"crypto/x509"
	"errors"
	"fmt"
	"net/http"
)

// Forward prepares a request to the next hop, so that a Go reverse proxy
// ([net/http/httputil.ReverseProxy]) can play the part nginx plays in front of a service in
// header mode. It first deletes the family of every given format from out's header and from its
// trailers, whatever the client sent and under any spelling (case and punctuation, see
// [HeaderConfig.CompanionHeaders]); then, when id is not nil, writes id's certificate in each
// format into out's header: the leaf and the intermediates of the verified chain (the trust
// anchor left out). At least one format is required by the signature: without one, a client's
// forged header would travel on.
//
// It deletes exactly the families of the formats it is given: each format's HeaderNames and its
// companion headers (see [Format]), nothing else. It does not know the
// [HeaderConfig.CompanionHeaders] of the service behind: a companion configured there only, such
// as an X-Client-Verify, would travel on with a client's forged value beside the real identity.
// Add such names to the format with [WithCompanions], and give the service that same format in
// [HeaderConfig.Format] instead of listing them in its CompanionHeaders.
//
// Trailers arrive after the body: when out declares any and has a body, its body is wrapped so
// that, once it has been read to its end, the trailers of the formats are deleted again before the
// transport writes them (a Trailer map shared with the incoming request fills as the client's
// body is read).
//
// Every format must be an [Encoder]: "rfc9440" and "envoy-xfcc" are, and so is [WithCompanions]
// of them. Call it on every proxied request, with or without an identity, in the proxy's Rewrite
// function:
//
//	format := mtls.WithCompanions(mtls.MustHeaderFormat("rfc9440"), "X-Client-Verify")
//	rp := &httputil.ReverseProxy{Rewrite: func(pr *httputil.ProxyRequest) {
//		pr.SetURL(backend)
//		id, _ := mtls.FromContext(pr.In.Context())
//		if err := mtls.Forward(pr.Out, id, format); err != nil {
//			panic(err) // only a format that cannot encode fails: a bug, not an input
//		}
//	}}
//
// The service behind must trust only this proxy (see [HeaderConfig]).
func Forward(out *http.Request, id *Identity, format Format, more ...Format) error {
	if out == nil {
		return errors.New("mtls: Forward: nil request")
	}
	formats := append([]Format{format}, more...)
	encoders := make([]Encoder, len(formats))
	var family []string
	for i, f := range formats {
		if f == nil {
			return errors.New("mtls: Forward: nil header format")
		}
		e, ok := f.(Encoder)
		if !ok {
			return fmt.Errorf("mtls: header format %q cannot be written", f.Name())
		}
		encoders[i] = e
		family = append(family, f.HeaderNames()...)
		if c, ok := f.(companionHeaders); ok {
			family = append(family, c.CompanionHeaders()...)
		}
	}
	// Delete every key naming one of the family in any case: a non-canonical key set by earlier
	// code would go out on the wire and be read by the next hop as the real header.
	lens := lengthsOf(family)
	deleteFamily := func(h http.Header) {
		for k := range h {
			if lens.may(k) && nameIndex(k, family) >= 0 {
				delete(h, k)
			}
		}
	}
	if out.Header == nil {
		out.Header = make(http.Header)
	}
	deleteFamily(out.Header)
	deleteFamily(out.Trailer)
	if out.Trailer != nil && out.Body != nil && out.Body != http.NoBody {
		out.Body = &trailerBody{ReadCloser: out.Body, atEOF: func() { deleteFamily(out.Trailer) }}
	}
	if id == nil || id.Leaf == nil {
		return nil
	}
	chain := forwardedChain(id)
	for _, e := range encoders {
		values, err := e.Encode(chain)
		if err != nil {
			return err
		}
		for i, name := range e.HeaderNames() {
			if i < len(values) && values[i] != "" {
				out.Header.Set(name, values[i])
			}
		}
	}
	return nil
}

// forwardedChain is the leaf and the intermediates of id's chain: a self-issued anchor at the
// end is left out, as the next hop has its own trust.
func forwardedChain(id *Identity) []*x509.Certificate {
	chain := id.Chain
	if len(chain) == 0 || chain[0] != id.Leaf {
		chain = []*x509.Certificate{id.Leaf}
	}
	if n := len(chain); n > 1 && bytes.Equal(chain[n-1].RawIssuer, chain[n-1].RawSubject) {
		chain = chain[:n-1]
	}
	return chain
}
