// Command prometheus shows how to turn the middleware's decisions and health into Prometheus
// metrics, with nothing to set up:
//
//	cd examples/prometheus && go run .
//
// It mints a demo PKI into a temporary directory (a client CA, a CRL that revokes one client,
// a server certificate), serves a hello handler behind the middleware over HTTPS on
// 127.0.0.1:8444 (-port), and the metrics over plain HTTP on 127.0.0.1:9464 (-metrics-port); it
// calls the service as a few clients so that the metrics show something, prints a curl command to
// call it yourself, and runs until SIGINT or SIGTERM, then removes the demo PKI's files. SIGHUP
// reloads the CA file (mtls.Middleware.Reload). A port in use (or any other failure to start)
// exits 1 with the error on stderr.
//
// The example is a module of its own, so that Prometheus never becomes a dependency of
// github.com/certgate/mtls. [Metrics] (decisions, through mtls.Config.OnDecision) and [Health]
// (reload and CRL status, read at scrape time) are the parts to copy.
package main

import (
	"context"
	"crypto/tls"
	"errors"
	"flag"
	"fmt"
	"io"
	"log"
	"math/big"
	"net"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/certgate/mtls"
	"github.com/certgate/mtls/mtlstest"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

func main() {
	port := flag.Int("port", defaultPort, "port of the mTLS service on 127.0.0.1 (0: any free port)")
	metricsPort := flag.Int("metrics-port", defaultMetricsPort, "port of the plain-HTTP /metrics endpoint on 127.0.0.1 (0: any free port)")
	flag.Parse()
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	err := run(ctx, os.Stdout, *port, *metricsPort)
	stop()
	if err != nil {
		fmt.Fprintf(os.Stderr, "prometheus: %v\n", err)
		os.Exit(1)
	}
}

// The default ports, which no other example of the module uses (examples/whoami listens on
// 8443), so that both can run at once.
const (
	defaultPort        = 8444
	defaultMetricsPort = 9464
)

// run serves until ctx is done, reloading on SIGHUP. The demo PKI's temporary directory is gone
// when it returns, whatever the outcome.
func run(ctx context.Context, out io.Writer, port, metricsPort int) error {
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
	s, err := start(fmt.Sprintf("127.0.0.1:%d", port), fmt.Sprintf("127.0.0.1:%d", metricsPort))
	if err != nil {
		return err
	}
	defer s.Close()
	fmt.Fprintf(out, "mTLS service %s\nmetrics      %s\n\n", s.apiURL, s.metricsURL)
	if err := s.callAll(out); err != nil {
		return err
	}
	d := s.dir
	fmt.Fprintf(out, "\ntry: curl --cacert %s --cert %s --key %s %s\n",
		filepath.Join(d, "server-ca.pem"), filepath.Join(d, "alice.pem"), filepath.Join(d, "alice-key.pem"), s.apiURL)
	for {
		select {
		case <-hup:
			if err := s.mw.Reload(); err != nil {
				fmt.Fprintln(out, "reload failed:", err)
			} else {
				fmt.Fprintln(out, "reloaded")
			}
		case <-ctx.Done():
			return nil
		}
	}
}

// service is the running demo.
type service struct {
	mw                 *mtls.Middleware
	api, metrics       *http.Server
	apiURL, metricsURL string
	dir                string // the demo PKI's files
	serverCA           *mtlstest.CA
	clients            []demoClient
}

// demoClient is one caller of callAll; cert nil: no certificate.
type demoClient struct {
	name string
	cert *mtlstest.Leaf
}

// start mints the demo PKI and starts the service on apiAddr and the metrics on metricsAddr. On
// error, nothing is left running and the temporary directory is removed.
func start(apiAddr, metricsAddr string) (*service, error) {
	dir, err := os.MkdirTemp("", "mtls-prometheus-")
	if err != nil {
		return nil, err
	}
	s := &service{dir: dir, serverCA: mtlstest.NewRootCA("Server CA")}
	if err := s.start(apiAddr, metricsAddr); err != nil {
		return nil, errors.Join(err, s.Close())
	}
	return s, nil
}

// start is [start]'s work on s, whose dir and serverCA are set.
func (s *service) start(apiAddr, metricsAddr string) error {
	dir := s.dir
	clientCA := mtlstest.NewRootCA("Partner CA")
	alice := clientCA.NewClient("alice")
	bob := clientCA.NewClient("bob")
	carol := clientCA.NewClient("carol", mtlstest.WithValidity(time.Now().Add(-time.Hour), time.Now().Add(7*24*time.Hour)))
	s.clients = []demoClient{
		{"alice", alice},
		{"carol (expires in a week)", carol},
		{"bob (revoked)", bob},
		{"no certificate", nil},
		{"stranger (unknown CA)", mtlstest.NewRootCA("Unknown CA").NewClient("stranger")},
	}
	mtlstest.WriteFile(dir, "server-ca.pem", s.serverCA.CertPEM())
	mtlstest.WriteFile(dir, "alice.pem", alice.CertPEM())
	mtlstest.WriteFile(dir, "alice-key.pem", alice.KeyPEM())
	crl := clientCA.NewCRL(mtlstest.CRL{Revoked: []*big.Int{bob.Certificate.SerialNumber}})

	reg := prometheus.NewRegistry()
	metrics := NewMetrics(reg)
	var err error
	s.mw, err = mtls.New(mtls.Config{
		RootCAFiles: []string{mtlstest.WriteFile(dir, "clients-ca.pem", clientCA.CertPEM())},
		Revocation: &mtls.RevocationConfig{CRL: &mtls.CRLConfig{
			Files: []string{mtlstest.WriteFile(dir, "clients.crl", mtlstest.CRLPEM(crl))},
		}},
		OnDecision: metrics.OnDecision,
	})
	if err != nil {
		return err
	}
	reg.MustRegister(NewHealth(s.mw))

	hello := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		id, _ := mtls.FromContext(r.Context())
		fmt.Fprintf(w, "hello %s\n", id.Leaf.Subject.CommonName)
	})
	s.api = &http.Server{
		Handler:           s.mw.Handler(hello),
		TLSConfig:         s.mw.TLSConfig(&tls.Config{Certificates: []tls.Certificate{s.serverCA.NewServer("127.0.0.1").TLSCertificate()}}),
		ReadHeaderTimeout: 5 * time.Second,
		ErrorLog:          log.New(io.Discard, "", 0),
	}
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
	s.metrics = &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	if s.apiURL, err = serve(s.api, apiAddr, true); err != nil {
		return err
	}
	if s.metricsURL, err = serve(s.metrics, metricsAddr, false); err != nil {
		return err
	}
	s.apiURL += "/"
	s.metricsURL += "/metrics"
	return nil
}

// serve starts srv on addr, over TLS if secure, and returns its base URL.
func serve(srv *http.Server, addr string, secure bool) (string, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return "", err
	}
	if secure {
		go func() { _ = srv.ServeTLS(ln, "", "") }()
		return "https://" + ln.Addr().String(), nil
	}
	go func() { _ = srv.Serve(ln) }()
	return "http://" + ln.Addr().String(), nil
}

// Close stops the servers and the middleware, and removes the demo PKI's files.
func (s *service) Close() error {
	var errs []error
	for _, srv := range []*http.Server{s.api, s.metrics} {
		if srv != nil {
			errs = append(errs, srv.Close())
		}
	}
	if s.mw != nil {
		errs = append(errs, s.mw.Close())
	}
	return errors.Join(append(errs, os.RemoveAll(s.dir))...)
}

// callAll calls the service once as each demo client and prints what each got.
func (s *service) callAll(out io.Writer) error {
	for _, c := range s.clients {
		status, body, err := s.call(c.cert)
		if err != nil {
			return fmt.Errorf("%s: %w", c.name, err)
		}
		fmt.Fprintf(out, "%-26s %d %s\n", c.name, status, body)
	}
	return nil
}

// call makes one request presenting cert (or no certificate) and returns the status and body.
func (s *service) call(cert *mtlstest.Leaf) (int, string, error) {
	cfg := &tls.Config{RootCAs: s.serverCA.Pool(), MinVersion: tls.VersionTLS12}
	if cert != nil {
		cfg.Certificates = []tls.Certificate{cert.TLSCertificate()}
	}
	client := &http.Client{Transport: &http.Transport{TLSClientConfig: cfg}, Timeout: 10 * time.Second}
	defer client.CloseIdleConnections()
	res, err := client.Get(s.apiURL)
	if err != nil {
		return 0, "", err
	}
	defer res.Body.Close()
	body, err := io.ReadAll(io.LimitReader(res.Body, 4096))
	return res.StatusCode, strings.TrimSpace(string(body)), err
}
