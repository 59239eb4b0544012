// Command jwt shows certificate-bound access tokens (RFC 8705): the server accepts a JWT bearer
// token only on a connection authenticated by the client certificate the token names in its cnf
// claim's "x5t#S256" member, so that a stolen token is useless without the client's key. With
// nothing to set up:
//
//	cd examples/jwt && go run .
//
// It mints an in-memory client CA and an authorization server's signing key, serves /resource
// over HTTPS on a random 127.0.0.1 port (with net/http/httptest's server certificate) behind [mtls.Middleware.Both] (a certificate AND a token
// bound to it), calls it as several clients, prints what each one got and exits.
//
// The example is a module of its own, so that the JWT library never becomes a dependency of
// github.com/certgate/mtls: the library checks the binding ([mtls.Identity.ConfirmX5tS256]), the
// JWT library of your choice checks the token.
package main

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"time"

	"github.com/certgate/mtls"
	"github.com/certgate/mtls/mtlstest"
	"github.com/golang-jwt/jwt/v5"
)

const (
	issuer   = "https://auth.example.test"
	audience = "https://api.example.test"
)

func main() {
	if err := run(os.Stdout); err != nil {
		log.Fatal(err)
	}
}

// Claims are the claims of an access token: the registered ones and the RFC 8705 confirmation.
type Claims struct {
	jwt.RegisteredClaims
	Cnf struct {
		X5tS256 string `json:"x5t#S256,omitempty"`
	} `json:"cnf"`
}

// TokenCheck returns the credential check for [mtls.Middleware.Both]: an "Authorization: Bearer"
// JWT signed with ES256 by the authorization server's key, for this audience, unexpired, and bound
// to the certificate of the connection. The token's subject is the principal.
func TokenCheck(key *ecdsa.PublicKey) mtls.CredentialCheck {
	parser := jwt.NewParser(
		jwt.WithValidMethods([]string{jwt.SigningMethodES256.Alg()}),
		jwt.WithIssuer(issuer),
		jwt.WithAudience(audience),
		jwt.WithExpirationRequired(),
	)
	keyFunc := func(*jwt.Token) (any, error) { return key, nil }
	return func(r *http.Request) (string, error) {
		scheme, raw, ok := strings.Cut(r.Header.Get("Authorization"), " ")
		if !ok || !strings.EqualFold(scheme, "Bearer") {
			return "", errors.New("no bearer token")
		}
		var claims Claims
		if _, err := parser.ParseWithClaims(raw, &claims, keyFunc); err != nil {
			return "", err
		}
		id, _ := mtls.FromContext(r.Context()) // set: Both checks the certificate first
		if err := id.ConfirmX5tS256(claims.Cnf.X5tS256); err != nil {
			return "", err
		}
		return claims.Subject, nil
	}
}

// writeError answers refused tokens with the Bearer challenge of RFC 6750 and every refusal
// with the library's problem response.
func writeError(w http.ResponseWriter, r *http.Request, err error) {
	if errors.Is(err, mtls.ErrCredentials) {
		w.Header().Set("WWW-Authenticate", `Bearer error="invalid_token"`)
	}
	mtls.WriteError(w, r, err)
}

// Handler serves /resource to clients with a certificate from clientCAs and a token signed by
// key that is bound to that certificate.
func Handler(clientCAs *mtlstest.CA, key *ecdsa.PublicKey) (*mtls.Middleware, http.Handler, error) {
	m, err := mtls.New(mtls.Config{RootCAs: clientCAs.Pool(), ErrorHandler: writeError})
	if err != nil {
		return nil, nil, err
	}
	mux := http.NewServeMux()
	mux.Handle("GET /resource", m.Both(TokenCheck(key))(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		id, _ := mtls.FromContext(r.Context())
		sub, _ := mtls.CredentialsFromContext(r.Context())
		fmt.Fprintf(w, "hello %s (certificate %s)", sub, id.Leaf.Subject.CommonName)
	})))
	return m, mux, nil
}

// Issue signs an access token for sub with key, bound to the certificate whose x5t#S256 value
// is given ("" for an unbound token), as an authorization server does once it has authenticated
// the client by that certificate.
func Issue(key *ecdsa.PrivateKey, sub, x5tS256 string, now time.Time) (string, error) {
	claims := Claims{RegisteredClaims: jwt.RegisteredClaims{
		Issuer:    issuer,
		Subject:   sub,
		Audience:  jwt.ClaimStrings{audience},
		IssuedAt:  jwt.NewNumericDate(now),
		ExpiresAt: jwt.NewNumericDate(now.Add(5 * time.Minute)),
	}}
	claims.Cnf.X5tS256 = x5tS256
	return jwt.NewWithClaims(jwt.SigningMethodES256, claims).SignedString(key)
}

func run(out io.Writer) error {
	clientCA := mtlstest.NewRootCA("Client CA")
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return err
	}
	m, h, err := Handler(clientCA, &key.PublicKey)
	if err != nil {
		return err
	}
	srv := serve(m, h)
	defer srv.Close()

	alice, mallory := clientCA.NewClient("alice"), clientCA.NewClient("mallory")
	aliceID, err := m.Authenticate(requestFrom(alice))
	if err != nil {
		return err
	}
	bound, err := Issue(key, "alice", aliceID.X5tS256, time.Now())
	if err != nil {
		return err
	}
	unbound, err := Issue(key, "alice", "", time.Now())
	if err != nil {
		return err
	}
	calls := []struct {
		who   string
		cert  *mtlstest.Leaf
		token string
	}{
		{"alice, her bound token", alice, bound},
		{"mallory, alice's stolen token", mallory, bound},
		{"no certificate, alice's token", nil, bound},
		{"alice, an unbound token", alice, unbound},
	}
	for _, c := range calls {
		res, body, err := call(srv, c.cert, c.token)
		if err != nil {
			return fmt.Errorf("%s: %w", c.who, err)
		}
		fmt.Fprintf(out, "%-30s %d %s\n", c.who, res.StatusCode, body)
	}
	return nil
}

// serve starts h over HTTPS on a random 127.0.0.1 port, with m's TLS settings and the test
// server certificate of net/http/httptest.
func serve(m *mtls.Middleware, h http.Handler) *httptest.Server {
	srv := httptest.NewUnstartedServer(h)
	srv.TLS = m.TLSConfig(nil)
	srv.Config.ErrorLog = log.New(io.Discard, "", 0)
	srv.StartTLS()
	return srv
}

// requestFrom is a request as the TLS server sees it from a client presenting leaf: how the
// demo's authorization server learns the certificate it binds the token to.
func requestFrom(leaf *mtlstest.Leaf) *http.Request {
	r := httptest.NewRequest(http.MethodGet, "https://127.0.0.1/", nil)
	r.TLS = &tls.ConnectionState{PeerCertificates: leaf.Chain()}
	return r
}

// call requests /resource from srv presenting cert (or none) and the bearer token (or none),
// and returns the response and its body.
func call(srv *httptest.Server, cert *mtlstest.Leaf, token string) (*http.Response, string, error) {
	tr := srv.Client().Transport.(*http.Transport).Clone() // trusts srv's certificate
	if cert != nil {
		tr.TLSClientConfig.Certificates = []tls.Certificate{cert.TLSCertificate()}
	}
	req, err := http.NewRequest(http.MethodGet, srv.URL+"/resource", nil)
	if err != nil {
		return nil, "", err
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	res, err := (&http.Client{Transport: tr, Timeout: 10 * time.Second}).Do(req)
	if err != nil {
		return nil, "", err
	}
	defer res.Body.Close()
	body, err := io.ReadAll(io.LimitReader(res.Body, 4096))
	return res, strings.TrimSpace(string(body)), err
}
