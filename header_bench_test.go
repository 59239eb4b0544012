package mtls

import (
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"fmt"
	"net/http"
	"net/netip"
	"testing"
	"time"

	"github.com/certgate/mtls/mtlstest"
	"github.com/stretchr/testify/require"
)

// headerBenchCase is a header-mode request and the middleware configuration it needs.
type headerBenchCase struct {
	name string
	cfg  func(cacheSize int) Config
	req  func() *http.Request
}

func headerBenchCases(tb testing.TB) []headerBenchCase {
	p := newPKI(tb)
	lan := []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8")}
	minted := headerBenchCase{
		name: "haproxy-ecdsa-leaf+chain",
		cfg: func(size int) Config {
			return Config{RootCAs: p.root.Pool(), CacheSize: size,
				Header: &HeaderConfig{Format: MustHeaderFormat("haproxy"), TrustedProxies: lan}}
		},
		req: func() *http.Request {
			return mtlstest.Proxy{Format: MustHeaderFormat("haproxy"), Addr: "10.0.0.1:4000"}.NewRequest(http.MethodGet, "/", p.alice.Chain()...)
		},
	}
	captured := headerBenchCase{
		name: "nginx-capture-rsa2048",
		cfg: func(size int) Config {
			return Config{RootCAs: readPEMFile(tb, "root-ca.crt"), Intermediates: readPEMFile(tb, "intermediate-ca.crt"),
				CacheSize: size, Now: func() time.Time { return captureNow },
				Header: &HeaderConfig{Format: MustHeaderFormat("nginx"), TrustedProxies: lan}}
		},
		req: func() *http.Request {
			r, err := captureRequest(tb, "nginx", "leaf")
			require.NoError(tb, err)
			r.RemoteAddr = "10.0.0.1:4000"
			return r
		},
	}
	cases := []headerBenchCase{minted, captured}
	for _, format := range []string{"rfc9440", "envoy-xfcc", "aws-alb", "traefik", "caddy"} {
		cases = append(cases, headerBenchCase{
			name: format + "-ecdsa",
			cfg: func(size int) Config {
				return Config{RootCAs: p.root.Pool(), Intermediates: p.issuing.Pool(), CacheSize: size,
					Header: &HeaderConfig{Format: MustHeaderFormat(format), TrustedProxies: lan}}
			},
			req: func() *http.Request {
				return mtlstest.Proxy{Format: MustHeaderFormat(format), Addr: "10.0.0.1:4000"}.NewRequest(http.MethodGet, "/", p.alice.Chain()...)
			},
		})
	}
	return cases
}

// BenchmarkHeader compares a header-mode request whose header values were seen before (cached)
// with one that is decoded, parsed and verified every time (cold: cache off), per format.
func BenchmarkHeader(b *testing.B) {
	for _, c := range headerBenchCases(b) {
		for _, mode := range []struct {
			name string
			size int
		}{{"cached", 0}, {"cold", -1}} {
			b.Run(mode.name+"/"+c.name, func(b *testing.B) {
				m, err := New(c.cfg(mode.size))
				require.NoError(b, err)
				h := m.Handler(noop)
				r := c.req()
				w := &discardWriter{h: http.Header{}}
				_, err = m.Authenticate(r)
				require.NoError(b, err)
				b.ReportAllocs()
				for b.Loop() {
					h.ServeHTTP(w, r)
				}
			})
		}
	}
}

// sizedHeaderValue returns a URL-encoded PEM value (the nginx format) of about size bytes: a
// client certificate made large by an opaque extension.
func sizedHeaderValue(tb testing.TB, issuing *mtlstest.CA, size int) string {
	oid := asn1.ObjectIdentifier{1, 3, 6, 1, 4, 1, 32473, 1}
	pad := 0
	for range 8 {
		leaf := issuing.NewClient("big", mtlstest.WithExtension(pkix.Extension{Id: oid, Value: make([]byte, pad)}))
		v := nginxEscape(pemText(leaf.Certificate))
		if len(v) <= size && len(v) > size-256 {
			return v
		}
		pad += (size - len(v) - 64) * 100 / 145 // escaped PEM is about 1.45 times the DER
		if pad < 0 {
			pad = 0
		}
	}
	tb.Fatalf("could not build a %d-byte header value", size)
	return ""
}

// BenchmarkHeaderParse measures decoding and parsing a header value from 1 KiB to the default
// size limit: the cost must grow linearly (constant MB/s).
func BenchmarkHeaderParse(b *testing.B) {
	p := newPKI(b)
	f := MustHeaderFormat("nginx")
	for _, kib := range []int{1, 2, 4, 8, 16, 32} {
		size := kib << 10
		if size > DefaultHeaderMaxBytes {
			size = DefaultHeaderMaxBytes
		}
		v := sizedHeaderValue(b, p.issuing, size)
		b.Run(fmt.Sprintf("%dKiB", kib), func(b *testing.B) {
			values := []string{v}
			b.SetBytes(int64(len(v)))
			b.ReportAllocs()
			for b.Loop() {
				ders, err := f.Decode(values)
				if err != nil {
					b.Fatal(err)
				}
				if _, err := x509.ParseCertificate(ders[0]); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// countingFormat counts the decodings of the format it wraps.
type countingFormat struct {
	Format
	decodes int
}

func (f *countingFormat) Decode(values []string) ([][]byte, error) {
	f.decodes++
	return f.Format.Decode(values)
}

// TestHeaderCachedRequestsDoNoWork: a cached header request neither decodes nor verifies again
// (the cost of both, against the cost of a hit, is in BenchmarkHeader).
func TestHeaderCachedRequestsDoNoWork(t *testing.T) {
	c := headerBenchCases(t)[0]
	for _, tt := range []struct {
		name  string
		size  int
		wants int
	}{{"cache on", 0, 1}, {"cache off", -1, 20}} {
		t.Run(tt.name, func(t *testing.T) {
			cfg := c.cfg(tt.size)
			f := &countingFormat{Format: cfg.Header.Format}
			cfg.Header.Format = f
			m, err := New(cfg)
			require.NoError(t, err)
			for range 20 {
				id, err := m.Authenticate(c.req())
				require.NoError(t, err)
				require.Equal(t, SourceHeader, id.Source)
			}
			require.Equal(t, tt.wants, f.decodes)
		})
	}
}

// BenchmarkHeaderUntrustedPeer is a direct TLS client of a service in header mode, with the
// headers a browser sends: every such request is searched for the family of the certificate
// headers (certificate headers and companions). "clean" carries none; "forged" carries two,
// which are removed from a copy.
func BenchmarkHeaderUntrustedPeer(b *testing.B) {
	p := newPKI(b)
	lan := []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8")}
	for _, format := range []string{"haproxy", "rfc9440"} {
		for _, forged := range []bool{false, true} {
			name := format + "/clean"
			if forged {
				name = format + "/forged"
			}
			b.Run(name, func(b *testing.B) {
				m, err := New(Config{RootCAs: p.root.Pool(), Intermediates: p.issuing.Pool(),
					Header: &HeaderConfig{Format: MustHeaderFormat(format), TrustedProxies: lan}})
				require.NoError(b, err)
				h := m.Handler(noop)
				r := mtlstest.NewRequest(http.MethodGet, "https://api.example.test/", p.alice.Chain()...)
				r.RemoteAddr = "192.0.2.1:4000"
				for k, v := range map[string]string{
					"Accept": "text/html", "Accept-Encoding": "gzip, br", "Accept-Language": "en",
					"Cache-Control": "no-cache", "Cookie": "a=b", "User-Agent": "Mozilla/5.0",
					"Content-Type": "text/plain", "Authorization": "Bearer x", "X-Forwarded-For": "192.0.2.1",
					"Sec-Fetch-Mode": "navigate", "Upgrade-Insecure-Requests": "1", "If-None-Match": `"x"`,
				} {
					r.Header.Set(k, v)
				}
				if forged {
					r.Header.Set("X-SSL-Client-Cert", "SPOOFED")
					r.Header.Set("Client-Cert", ":U1BPT0ZFRA==:")
				}
				w := &discardWriter{h: http.Header{}}
				h.ServeHTTP(w, r)
				b.ReportAllocs()
				for b.Loop() {
					h.ServeHTTP(w, r)
				}
			})
		}
	}
}
