package mtls_test

import (
	"crypto/sha256"
	"crypto/subtle"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"log"
	"net/http"
	"net/http/httptest"
	"strings"

	"github.com/certgate/mtls"
	"github.com/certgate/mtls/mtlstest"
)

// Certificate or password: partners authenticate by certificate, a legacy client by HTTP Basic
// authentication. The error handler adds the Basic challenge to credential refusals.
func ExampleMiddleware_Either() {
	partnerCA := mtlstest.NewRootCA("Partner Root CA")
	m, err := mtls.New(mtls.Config{
		RootCAs: partnerCA.Pool(),
		ErrorHandler: func(w http.ResponseWriter, r *http.Request, err error) {
			if errors.Is(err, mtls.ErrCredentials) {
				w.Header().Set("WWW-Authenticate", `Basic realm="billing", charset="UTF-8"`)
			}
			mtls.WriteError(w, r, err)
		},
	})
	if err != nil {
		log.Fatal(err)
	}
	password := func(r *http.Request) (string, error) {
		user, pass, ok := r.BasicAuth()
		if !ok || subtle.ConstantTimeCompare([]byte(user+":"+pass), []byte("legacy:s3cret")) != 1 {
			return "", errors.New("bad or missing basic credentials")
		}
		return user, nil
	}
	hello := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if id, ok := mtls.FromContext(r.Context()); ok {
			fmt.Fprintf(w, "certificate %s", id.Leaf.Subject.CommonName)
			return
		}
		user, _ := mtls.CredentialsFromContext(r.Context())
		fmt.Fprintf(w, "password %s", user)
	})
	mux := http.NewServeMux()
	mux.Handle("/invoices", m.Either(password)(hello))

	call := func(leaf *mtlstest.Leaf, user, pass string) {
		r := httptest.NewRequest(http.MethodGet, "https://api.example.test/invoices", nil)
		r.TLS = &tls.ConnectionState{ServerName: "api.example.test"} // as the TLS server sets it
		if leaf != nil {
			r.TLS.PeerCertificates = leaf.Chain()
		}
		if user != "" {
			r.SetBasicAuth(user, pass)
		}
		w := httptest.NewRecorder()
		mux.ServeHTTP(w, r)
		body := w.Body.String()
		if w.Code != http.StatusOK {
			var problem struct{ Reason string }
			_ = json.Unmarshal(w.Body.Bytes(), &problem)
			body = problem.Reason
		}
		fmt.Println(strings.TrimSpace(fmt.Sprint(w.Code, " ", body, " ", w.Header().Get("WWW-Authenticate"))))
	}
	call(partnerCA.NewClient("acme"), "", "")
	call(nil, "legacy", "s3cret")
	call(nil, "legacy", "guess")
	// A certificate that is presented must be valid: no second try with the password.
	call(mtlstest.NewSelfSigned("mallory"), "legacy", "s3cret")
	// Output:
	// 200 certificate acme
	// 200 password legacy
	// 401 credentials_required Basic realm="billing", charset="UTF-8"
	// 401 certificate_untrusted
}

// Certificate and API key: the operator console needs both an operator's certificate and the
// console's key. The check runs only once the certificate passed.
func ExampleMiddleware_Both() {
	opsCA := mtlstest.NewRootCA("Ops Root CA")
	m, err := mtls.New(mtls.Config{RootCAs: opsCA.Pool()})
	if err != nil {
		log.Fatal(err)
	}
	apiKey := func(r *http.Request) (string, error) {
		if subtle.ConstantTimeCompare([]byte(r.Header.Get("X-Api-Key")), []byte("console-key")) != 1 {
			return "", errors.New("bad or missing API key")
		}
		return "console", nil
	}
	console := m.Both(apiKey)(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		id, _ := mtls.FromContext(r.Context())
		key, _ := mtls.CredentialsFromContext(r.Context())
		fmt.Fprintf(w, "%s via %s", id.Leaf.Subject.CommonName, key)
	}))

	operator := opsCA.NewClient("operator-7")
	for _, c := range []struct {
		leaf *mtlstest.Leaf
		key  string
	}{{operator, "console-key"}, {operator, "guess"}, {nil, "console-key"}} {
		r := httptest.NewRequest(http.MethodGet, "https://console.example.test/", nil)
		r.TLS = &tls.ConnectionState{ServerName: "console.example.test"}
		if c.leaf != nil {
			r.TLS.PeerCertificates = c.leaf.Chain()
		}
		r.Header.Set("X-Api-Key", c.key)
		w := httptest.NewRecorder()
		console.ServeHTTP(w, r)
		fmt.Println(w.Code, strings.TrimSpace(w.Body.String()))
	}
	// Output:
	// 200 operator-7 via console
	// 401 {"type":"about:blank","title":"Unauthorized","status":401,"reason":"credentials_required"}
	// 401 {"type":"about:blank","title":"Unauthorized","status":401,"reason":"certificate_required"}
}

// A certificate-bound access token (RFC 8705) is accepted only from the client whose certificate
// it names in its cnf claim's "x5t#S256" member. Verify the token itself first.
func ExampleIdentity_ConfirmX5tS256() {
	ca := mtlstest.NewRootCA("Client CA")
	m, err := mtls.New(mtls.Config{RootCAs: ca.Pool()})
	if err != nil {
		log.Fatal(err)
	}
	alice, bob := ca.NewClient("alice"), ca.NewClient("bob")
	r := httptest.NewRequest(http.MethodGet, "https://api.example.test/", nil)
	r.TLS = &tls.ConnectionState{PeerCertificates: alice.Chain(), ServerName: "api.example.test"}
	id, err := m.Authenticate(r)
	if err != nil {
		log.Fatal(err)
	}

	// What the authorization server put in each token's cnf claim when it issued it.
	x5tS256 := func(c *x509.Certificate) string {
		sum := sha256.Sum256(c.Raw)
		return base64.RawURLEncoding.EncodeToString(sum[:])
	}
	aliceToken, bobToken := x5tS256(alice.Certificate), x5tS256(bob.Certificate)
	fmt.Println(id.ConfirmX5tS256(aliceToken))
	fmt.Println(errors.Is(id.ConfirmX5tS256(bobToken), mtls.ErrTokenCertificateMismatch))
	fmt.Println(errors.Is(id.ConfirmX5tS256(""), mtls.ErrUnboundToken))
	fmt.Println(errors.Is(id.ConfirmX5tS256(aliceToken+"="), mtls.ErrMalformedX5tS256))
	// Output:
	// <nil>
	// true
	// true
	// true
}
