package mtls

import (
	"crypto/tls"
	"encoding/json"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/certgate/mtls/internal/testprog"
	"github.com/certgate/mtls/mtlstest"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// The test kit shared by the package's tests, on top of mtlstest (certificates, requests over
// TLS and from a proxy, identities through NewIdentity): a test PKI, a TLS server and its
// clients, and the default refusal's body.

// requireBinary returns the path of an external program an integration test needs (see
// [testprog.Require]: skipped under -short or when missing, failed when missing under CI=true).
func requireBinary(t testing.TB, name string) string {
	t.Helper()
	return testprog.Require(t, name)
}

// pki is a test PKI: root -> issuing intermediate -> clients, plus an unrelated CA.
type pki struct {
	root, issuing, other *mtlstest.CA
	alice                *mtlstest.Leaf
}

func newPKI(t testing.TB) *pki {
	t.Helper()
	root := mtlstest.NewRootCA("Test Root CA")
	issuing := root.NewIntermediate("Test Issuing CA")
	return &pki{
		root:    root,
		issuing: issuing,
		other:   mtlstest.NewRootCA("Other Root CA"),
		alice: issuing.NewClient("alice",
			mtlstest.WithDNS("alice.example.test"),
			mtlstest.WithEmails("alice@example.test"),
			mtlstest.WithURIs("spiffe://example.test/ns/prod/sa/alice"),
			mtlstest.WithIPs("192.0.2.7")),
	}
}

// echoIdentity answers with the common name of the identity, or "anonymous".
var echoIdentity = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
	if id, ok := FromContext(r.Context()); ok {
		_, _ = io.WriteString(w, id.Leaf.Subject.CommonName)
		return
	}
	_, _ = io.WriteString(w, "anonymous")
})

type problem struct {
	Type   string `json:"type"`
	Title  string `json:"title"`
	Status int    `json:"status"`
	Reason string `json:"reason"`
}

func decodeProblem(t *testing.T, res *http.Response) problem {
	t.Helper()
	assert.Equal(t, "application/problem+json", res.Header.Get("Content-Type"))
	var p problem
	dec := json.NewDecoder(res.Body)
	dec.DisallowUnknownFields()
	require.NoError(t, dec.Decode(&p))
	assert.Equal(t, res.StatusCode, p.Status)
	assert.Equal(t, http.StatusText(res.StatusCode), p.Title)
	return p
}

// tlsServer serves h behind m over a real TLS listener.
func tlsServer(t *testing.T, m *Middleware, h http.Handler, opts ...TLSOption) (*httptest.Server, *mtlstest.CA) {
	t.Helper()
	serverCA := mtlstest.NewRootCA("Server CA")
	srv := httptest.NewUnstartedServer(m.Handler(h))
	srv.TLS = m.TLSConfig(&tls.Config{Certificates: []tls.Certificate{serverCA.NewServer("127.0.0.1").TLSCertificate()}}, opts...)
	srv.Config.ErrorLog = log.New(io.Discard, "", 0) // refused handshakes are expected here
	srv.StartTLS()
	t.Cleanup(srv.Close)
	return srv, serverCA
}

func clientFor(serverCA *mtlstest.CA, leaf *mtlstest.Leaf) *http.Client {
	cfg := &tls.Config{RootCAs: serverCA.Pool(), MinVersion: tls.VersionTLS12}
	if leaf != nil {
		cfg.Certificates = []tls.Certificate{leaf.TLSCertificate()}
	}
	return &http.Client{Transport: &http.Transport{TLSClientConfig: cfg}, Timeout: 10 * time.Second}
}
