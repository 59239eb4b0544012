// Command gin shows client-certificate authentication and per-route policies with the gin web
// framework, with nothing to set up:
//
//	cd examples/gin && go run .
//
// The example is a module of its own, so that gin never becomes a dependency of
// github.com/certgate/mtls. The library has no gin adapter: the short [adapt] below turns
// any net/http middleware, such as m.Handler and m.Require(policy), into a gin handler.
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
	"github.com/gin-gonic/gin"
)

func main() {
	if err := run(os.Stdout); err != nil {
		log.Fatal(err)
	}
}

// adapt runs a net/http middleware as a gin handler: the chain goes on (with the request that
// carries the identity) only if the middleware calls its next handler; otherwise the middleware
// has written the refusal and the chain stops.
func adapt(mw func(http.Handler) http.Handler) gin.HandlerFunc {
	return func(c *gin.Context) {
		passed := false
		mw(http.HandlerFunc(func(_ http.ResponseWriter, r *http.Request) {
			passed = true
			c.Request = r
			c.Next()
		})).ServeHTTP(c.Writer, c.Request)
		if !passed {
			c.Abort()
		}
	}
}

// routes builds the engine: /health is public, the group requires a verified certificate and one
// route also requires the ops team.
func routes(m *mtls.Middleware) (http.Handler, error) {
	ops, err := mtls.RequireSubject(mtls.Attributes{"ou": {"ops"}})
	if err != nil {
		return nil, err
	}
	r := gin.New()
	r.GET("/health", func(c *gin.Context) { c.String(http.StatusOK, "ok") })
	api := r.Group("/", adapt(m.Handler))
	api.GET("/orders", hello)
	api.DELETE("/orders/:id", adapt(m.Require(ops)), hello)
	return r, nil
}

func hello(c *gin.Context) {
	id, _ := mtls.FromContext(c.Request.Context())
	c.String(http.StatusOK, "hello %s", id.Leaf.Subject.CommonName)
}

func run(out io.Writer) error {
	gin.SetMode(gin.ReleaseMode)
	clientCA := mtlstest.NewRootCA("Acme Root CA")
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

	alice := clientCA.NewClient("alice")
	olga := clientCA.NewClient("olga", mtlstest.WithSubject(pkix.Name{CommonName: "olga", OrganizationalUnit: []string{"ops"}}))
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
	}
	for _, c := range calls {
		status, body, err := call(c.method, base+c.path, serverCA, c.cert)
		if err != nil {
			return fmt.Errorf("%s %s: %w", c.method, c.path, err)
		}
		fmt.Fprintf(out, "%-11s %-6s %-10s %d %s\n", c.who, c.method, c.path, status, body)
	}
	return nil
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
