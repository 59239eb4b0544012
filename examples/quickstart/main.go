// Command quickstart shows client-certificate authentication end to end, with nothing to set up:
//
//	go run ./examples/quickstart
//
// It mints an in-memory CA with server and client certificates, serves a protected handler over
// HTTPS on a random 127.0.0.1 port, calls it as four different clients, prints what each one got
// and exits. Before each refusal, the server's log line (slog.Default(), on stderr: the
// middleware's default logger) says why, with the fix; the client gets the reason code only.
// While it runs, SIGHUP reloads the middleware's files (mtls.Middleware.Reload), as a real
// service would: this one configures its CA in memory, so there is nothing to read.
package main

import (
	"crypto/tls"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/certgate/mtls"
	"github.com/certgate/mtls/mtlstest"
)

func main() {
	if err := run(os.Stdout); err != nil {
		log.Fatal(err)
	}
}

func run(out io.Writer) error {
	// The PKI: a CA that issues our partners' client certificates, and one we do not trust.
	clientCA := mtlstest.NewRootCA("Partner Root CA")
	issuing := clientCA.NewIntermediate("Partner Issuing CA")
	strangerCA := mtlstest.NewRootCA("Unknown CA")
	serverCA := mtlstest.NewRootCA("Server CA")

	// The service: every request needs a certificate that chains to clientCA.
	m, err := mtls.New(mtls.Config{RootCAs: clientCA.Pool()})
	if err != nil {
		return err
	}
	defer m.Close()
	stop := reloadOnSIGHUP(m)
	defer stop()
	api := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		id, _ := mtls.FromContext(r.Context())
		fmt.Fprintf(w, "hello %s (sha256 %s…)", id.Leaf.Subject.CommonName, id.SHA256[:16])
	})
	srv := &http.Server{
		Handler:           m.Handler(api),
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
	url := "https://" + ln.Addr().String() + "/"
	fmt.Fprintf(out, "serving %s\n\n", url)

	yesterday := time.Now().Add(-24 * time.Hour)
	clients := []struct {
		name string
		cert *mtlstest.Leaf
	}{
		{"(a) trusted client", issuing.NewClient("acme-billing", mtlstest.WithURIs("spiffe://partners.test/acme/billing"))},
		{"(b) no certificate", nil},
		{"(c) untrusted CA", strangerCA.NewClient("acme-billing")},
		{"(d) expired certificate", issuing.NewClient("acme-legacy", mtlstest.WithValidity(yesterday.Add(-365*24*time.Hour), yesterday))},
	}
	for _, c := range clients {
		status, body, err := call(url, serverCA, c.cert)
		if err != nil {
			return fmt.Errorf("%s: %w", c.name, err)
		}
		fmt.Fprintf(out, "%-26s %d %s\n", c.name, status, body)
	}
	return nil
}

// reloadOnSIGHUP calls m.Reload on every SIGHUP until stop is called. A failed reload keeps what
// is in force; the middleware logs the outcome either way to Config.Logger, when one is set.
func reloadOnSIGHUP(m *mtls.Middleware) (stop func()) {
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	done := make(chan struct{})
	go func() {
		for {
			select {
			case <-hup:
				_ = m.Reload()
			case <-done:
				return
			}
		}
	}()
	return func() {
		signal.Stop(hup)
		close(done)
	}
}

// call makes one request presenting cert (or no certificate) and returns the status and body.
func call(url string, serverCA *mtlstest.CA, cert *mtlstest.Leaf) (int, string, error) {
	cfg := &tls.Config{RootCAs: serverCA.Pool(), MinVersion: tls.VersionTLS12}
	if cert != nil {
		cfg.Certificates = []tls.Certificate{cert.TLSCertificate()}
	}
	client := &http.Client{Transport: &http.Transport{TLSClientConfig: cfg}, Timeout: 10 * time.Second}
	res, err := client.Get(url)
	if err != nil {
		return 0, "", err
	}
	defer res.Body.Close()
	body, err := io.ReadAll(io.LimitReader(res.Body, 4096))
	return res.StatusCode, strings.TrimSpace(string(body)), err
}
