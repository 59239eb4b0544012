package mtls

import (
	"crypto/tls"
	"net/http"
	"strings"
	"testing"

	"github.com/certgate/mtls/internal/certheader"
)

// FuzzNameSet: the family's look-up, with its pre-filters, finds exactly the names a plain
// comparison with every name finds (nameIndex: case and punctuation folded), for any key.
func FuzzNameSet(f *testing.F) {
	for _, k := range []string{"X-Ssl-Client-Verify", "x_ssl_client_verify", "Client-Cert", "CLIENT_CERT-CHAIN",
		"Cf-Cert-Verified", "Accept-Encoding", "X.Ssl.Client.Verify", "X-Odd!", "x~tilde_", "X-Ssl-Client-Verif\u00ff", "", "X-Amzn-Mtls-Clientcert-Leaf"} {
		f.Add(k)
	}
	var sets []nameSet
	var families [][]string
	for _, name := range HeaderFormatNames() {
		fm := MustHeaderFormat(name)
		family := append(fm.HeaderNames(), companionsOf(fm)...)
		families = append(families, family)
		sets = append(sets, newNameSet(family))
	}
	// Configured companions may end in punctuation, which folds with every other.
	odd := []string{"X-Client-Verify", "X-Odd.", "X-Odd-2", "X-Tilde~", "X-Tilde-"}
	families = append(families, odd)
	sets = append(sets, newNameSet(odd))
	f.Fuzz(func(t *testing.T, key string) {
		for i, s := range sets {
			got, want := s.index(key), nameIndex(key, families[i])
			if (got < 0) != (want < 0) || got >= 0 && !certheader.SameName(s.names[got], families[i][want]) {
				t.Fatalf("%q in %v: index %d, nameIndex %d", key, families[i], got, want)
			}
		}
	})
}

// FuzzCheckHost: a request authenticated on its TLS connection is let through only for ASCII
// names, with a server name only when the Host begins with it, ASCII letters folded, and only
// with a port of digits if any; a Host that is the (ASCII, colon-free) server name itself always
// is.
func FuzzCheckHost(f *testing.F) {
	for _, s := range [][2]string{{"api.example.test", "api.example.test"}, {"api.example.test", "API.example.test:443"},
		{"\u017fecure.example.test", "secure.example.test"}, {"\u212aey.example.test", "key.example.test"},
		{"", "[::1]:8443"}, {"", "127.0.0.1"}, {"", ""}, {"a.", "A"},
		{"api.example.test", "api.example.test:admin.example.test"}, {"", "[::1]:x"}, {"", "1.2.3.4:5:6"}} {
		f.Add(s[0], s[1])
	}
	m := &Middleware{}
	peer := newPKI(f).alice.Chain()
	f.Fuzz(func(t *testing.T, sni, host string) {
		r := &http.Request{Host: host, TLS: &tls.ConnectionState{ServerName: sni, PeerCertificates: peer}}
		err := m.checkHost(r)
		if sni != "" && host == sni && certheader.IsASCII(sni) && !strings.Contains(sni, ":") && err != nil {
			t.Fatalf("Host %q refused for the same server name", host)
		}
		if err != nil {
			return
		}
		if !certheader.IsASCII(host) || !certheader.IsASCII(sni) {
			t.Fatalf("non-ASCII name let through: SNI %q, Host %q", sni, host)
		}
		if name := strings.TrimSuffix(sni, "."); !strings.HasPrefix(strings.ToLower(host), strings.ToLower(name)) {
			t.Fatalf("Host %q let through for server name %q", host, sni)
		}
		rest := host
		if strings.HasPrefix(rest, "[") {
			rest = rest[strings.IndexByte(rest, ']')+1:]
		}
		if i := strings.IndexByte(rest, ':'); i >= 0 && strings.Trim(rest[i+1:], "0123456789") != "" {
			t.Fatalf("Host %q let through with a port that is not digits", host)
		}
	})
}
