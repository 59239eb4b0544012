// Command chi shows per-route client-certificate policies and per-partner throttling tiers with
// the chi router, with nothing to set up:
//
//	go run ./examples/chi
//
// It mints an in-memory PKI and serves, over HTTPS on a random 127.0.0.1 port:
//
//	GET    /health        public: no certificate needed
//	GET    /orders        any certificate issued by the Issuing CA (router-wide requirement)
//	DELETE /orders/{id}   also the ops team, by a per-route policy
//	GET    /partner/stats also a production SPIFFE ID, by a policy loaded from JSON
//	GET    /quote         any certificate; answers with the caller's principal
//
// Every route but /health is throttled by tier. Two partners' certificates are bound to
// principals (their aliases) by a bindings file, and a tiers file gives partner-a the "gold"
// tier and partner-b "bronze"; every other certificate gets the default tier, "standard". Both
// files are written to a temporary directory.
//
// It then calls the routes as several clients, prints what each one got and exits: partner-b
// gets the 3 requests of its bronze burst, then 429 "rate_limited" with a Retry-After header,
// while partner-a carries on.
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
	"path/filepath"
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
		r.Get("/quote", quote)
	})
	return r, nil
}

func run(out io.Writer) error {
	clientCA := mtlstest.NewRootCA("Acme Root CA")
	issuing := clientCA.NewIntermediate("Issuing CA")
	serverCA := mtlstest.NewRootCA("Server CA")

	partnerA := issuing.NewClient("api.partner-a.test")
	partnerB := issuing.NewClient("gw.partner-b.test")

	// The bindings and tiers files would live in the service's configuration directory, and be
	// read again with the trust by m.Reload.
	dir, err := os.MkdirTemp("", "chi-example-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	bindingsFile := filepath.Join(dir, "bindings.json")
	tiersFile := filepath.Join(dir, "tiers.json")
	bindings := fmt.Sprintf(`{"partner-a": [%q], "partner-b": [%q]}`, partnerA.SHA256(), partnerB.SHA256())
	if err := os.WriteFile(bindingsFile, []byte(bindings), 0o600); err != nil {
		return err
	}
	if err := os.WriteFile(tiersFile, []byte(`{"partner-a": "gold", "partner-b": "bronze"}`), 0o600); err != nil {
		return err
	}
	principals, err := mtls.NewBindingStore(bindingsFile)
	if err != nil {
		return err
	}
	tiers, err := mtls.NewTierStore(tiersFile)
	if err != nil {
		return err
	}

	m, err := mtls.New(mtls.Config{
		RootCAs:    clientCA.Pool(),
		Principals: principals,
		Throttle: &mtls.ThrottleConfig{
			Tiers: map[string]mtls.Tier{
				"gold":     {Rate: 50, Burst: 20},
				"standard": {Rate: 10, Burst: 10},
				// 3 at once, then one every 1000 s: nothing refills while the example runs.
				"bronze": {Rate: 0.001, Burst: 3},
			},
			Default:  "standard", // certificates without a tier of their own
			Resolver: tiers,
		},
	})
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
	calls := []request{
		{"anonymous", nil, http.MethodGet, "/health"},
		{"anonymous", nil, http.MethodGet, "/orders"},
		{"alice", alice, http.MethodGet, "/orders"},
		{"alice", alice, http.MethodDelete, "/orders/7"},
		{"olga (ops)", olga, http.MethodDelete, "/orders/7"},
		{"alice", alice, http.MethodGet, "/partner/stats"},
		{"billing (prod)", billing, http.MethodGet, "/partner/stats"},
	}
	for range 4 { // partner-b's bronze burst is 3; partner-a's gold one is 20
		calls = append(calls,
			request{"partner-a", partnerA, http.MethodGet, "/quote"},
			request{"partner-b", partnerB, http.MethodGet, "/quote"})
	}
	for _, c := range calls {
		status, retry, body, err := call(c.method, base+c.path, serverCA, c.cert)
		if err != nil {
			return fmt.Errorf("%s %s: %w", c.method, c.path, err)
		}
		if retry != "" { // its value, about 1000 s for bronze, depends on how long the calls took
			body = "(Retry-After) " + body
		}
		fmt.Fprintf(out, "%-15s %-6s %-15s %d %s\n", c.who, c.method, c.path, status, body)
	}
	return nil
}

// request is one call of the example: who makes it, with which certificate (nil: none).
type request struct {
	who    string
	cert   *mtlstest.Leaf
	method string
	path   string
}

func hello(w http.ResponseWriter, r *http.Request) {
	id, _ := mtls.FromContext(r.Context())
	fmt.Fprintf(w, "hello %s", id.Leaf.Subject.CommonName)
}

// quote answers the caller by its principal: the alias its certificate is bound to.
func quote(w http.ResponseWriter, r *http.Request) {
	id, _ := mtls.FromContext(r.Context())
	fmt.Fprintf(w, "quote for %s", id.Principal)
}

func text(s string) http.HandlerFunc {
	return func(w http.ResponseWriter, _ *http.Request) { _, _ = io.WriteString(w, s) }
}

// call makes one request presenting cert (or no certificate) and returns the status, the
// Retry-After header and the body.
func call(method, url string, serverCA *mtlstest.CA, cert *mtlstest.Leaf) (status int, retryAfter, body string, err error) {
	cfg := &tls.Config{RootCAs: serverCA.Pool(), MinVersion: tls.VersionTLS12}
	if cert != nil {
		cfg.Certificates = []tls.Certificate{cert.TLSCertificate()}
	}
	client := &http.Client{Transport: &http.Transport{TLSClientConfig: cfg}, Timeout: 10 * time.Second}
	req, err := http.NewRequest(method, url, nil)
	if err != nil {
		return 0, "", "", err
	}
	res, err := client.Do(req)
	if err != nil {
		return 0, "", "", err
	}
	defer res.Body.Close()
	b, err := io.ReadAll(io.LimitReader(res.Body, 4096))
	return res.StatusCode, res.Header.Get("Retry-After"), strings.TrimSpace(string(b)), err
}

func pkixName(cn string, ou ...string) pkix.Name {
	return pkix.Name{CommonName: cn, OrganizationalUnit: ou}
}
