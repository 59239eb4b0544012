// Command chi shows per-route client-certificate policies with the chi router, with nothing to
// set up:
//
//	go run ./examples/chi
//
// It mints an in-memory PKI and serves, over HTTPS on a random 127.0.0.1 port:
//
//	GET    /health        public: no certificate needed
//	GET    /orders        any certificate issued by the Issuing CA (router-wide requirement)
//	DELETE /orders/{id}   also the ops team, by a per-route policy
//	GET    /partner/stats also a production SPIFFE ID, by a policy loaded from JSON
//
// then calls the routes as several clients, prints what each one got and exits.
package main

import (
	"crypto/tls"
	"crypto/x509/pkix"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"os"
	"strings"
	"time"

	"github.com/certgate/mtls"
	"github.com/certgate/mtls/mtlstest"
	"github.com/go-chi/chi/v5"
)

func main() {
	if err := run(os.Stdout); err != nil {
		log.Fatal(err)
	}
}

// partnerPolicy would live in a configuration file (see mtls.LoadPolicyFile).
const partnerPolicy = `{"all": [
  {"issuer": {"cn": ["Issuing CA"]}},
  {"spiffe": ["spiffe://acme.test/ns/prod/*"]},
  {"min_validity": "24h"}
]}`

// routes builds the router: /health is public; the group below it requires a verified
// certificate (m.Handler), and two of its routes require more (m.Require).
func routes(m *mtls.Middleware) (http.Handler, error) {
	ops, err := mtls.RequireSubject(mtls.Attributes{"ou": {"ops"}})
	if err != nil {
		return nil, err
	}
	partners, err := mtls.ParsePolicy([]byte(partnerPolicy))
	if err != nil {
		return nil, err
	}

	r := chi.NewRouter()
	r.Get("/health", text("ok"))
	r.Group(func(r chi.Router) {
		r.Use(m.Handler) // from here on a valid client certificate is required
		r.Get("/orders", hello)
		r.With(m.Require(ops)).Delete("/orders/{id}", hello)
		r.With(m.Require(partners)).Get("/partner/stats", hello)
	})
	return r, nil
}

func run(out io.Writer) error {
	clientCA := mtlstest.NewRootCA("Acme Root CA")
	issuing := clientCA.NewIntermediate("Issuing CA")
	serverCA := mtlstest.NewRootCA("Server CA")

	m, err := mtls.New(mtls.Config{RootCAs: clientCA.Pool()})
	if err != nil {
		return err
	}
	h, err := routes(m)
	if err != nil {
		return err
	}
	srv := &http.Server{
		Handler:           h,
		TLSConfig:         m.TLSConfig(&tls.Config{Certificates: []tls.Certificate{serverCA.NewServer("127.0.0.1").TLSCertificate()}}),
		ReadHeaderTimeout: 5 * time.Second,
		ErrorLog:          log.New(io.Discard, "", 0),
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	go func() { _ = srv.ServeTLS(ln, "", "") }()
	defer srv.Close()
	base := "https://" + ln.Addr().String()

	alice := issuing.NewClient("alice")
	olga := issuing.NewClient("olga", mtlstest.WithSubject(pkixName("olga", "ops")))
	billing := issuing.NewClient("billing", mtlstest.WithURIs("spiffe://acme.test/ns/prod/sa/billing"))
	calls := []struct {
		who    string
		cert   *mtlstest.Leaf
		method string
		path   string
	}{
		{"anonymous", nil, http.MethodGet, "/health"},
		{"anonymous", nil, http.MethodGet, "/orders"},
		{"alice", alice, http.MethodGet, "/orders"},
		{"alice", alice, http.MethodDelete, "/orders/7"},
		{"olga (ops)", olga, http.MethodDelete, "/orders/7"},
		{"alice", alice, http.MethodGet, "/partner/stats"},
		{"billing (prod)", billing, http.MethodGet, "/partner/stats"},
	}
	for _, c := range calls {
		status, body, err := call(c.method, base+c.path, serverCA, c.cert)
		if err != nil {
			return fmt.Errorf("%s %s: %w", c.method, c.path, err)
		}
		fmt.Fprintf(out, "%-15s %-6s %-15s %d %s\n", c.who, c.method, c.path, status, body)
	}
	return nil
}

func hello(w http.ResponseWriter, r *http.Request) {
	id, _ := mtls.FromContext(r.Context())
	fmt.Fprintf(w, "hello %s", id.Leaf.Subject.CommonName)
}

func text(s string) http.HandlerFunc {
	return func(w http.ResponseWriter, _ *http.Request) { _, _ = io.WriteString(w, s) }
}

// call makes one request presenting cert (or no certificate) and returns the status and body.
func call(method, url string, serverCA *mtlstest.CA, cert *mtlstest.Leaf) (int, string, error) {
	cfg := &tls.Config{RootCAs: serverCA.Pool(), MinVersion: tls.VersionTLS12}
	if cert != nil {
		cfg.Certificates = []tls.Certificate{cert.TLSCertificate()}
	}
	client := &http.Client{Transport: &http.Transport{TLSClientConfig: cfg}, Timeout: 10 * time.Second}
	req, err := http.NewRequest(method, url, nil)
	if err != nil {
		return 0, "", err
	}
	res, err := client.Do(req)
	if err != nil {
		return 0, "", err
	}
	defer res.Body.Close()
	body, err := io.ReadAll(io.LimitReader(res.Body, 4096))
	return res.StatusCode, strings.TrimSpace(string(body)), err
}

func pkixName(cn string, ou ...string) pkix.Name {
	return pkix.Name{CommonName: cn, OrganizationalUnit: ou}
}
