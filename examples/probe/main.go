// Command probe checks that the proxy in front of a service in header mode does not let a client
// forge the headers the service believes. It sends forged certificate headers, and the companion
// headers proxies set beside them, through the proxy with a canary value, and prints each one
// that reached the service. The service must answer the probe: set HeaderConfig.ProbePath
// (github.com/certgate/mtls) to the URL's path.
//
//	go run ./examples/probe -url https://api.example.com/.well-known/mtls-probe
//	go run ./examples/probe -url https://api.example.com/.well-known/mtls-probe \
//	    -cert client.pem -key client-key.pem -ca proxy-ca.pem -header X-Tenant
//
// Flags:
//
//	-url URL         the probe's URL as reached through the proxy (required)
//	-cert FILE       PEM client certificate (and chain): also probe while presenting it
//	-key FILE        PEM private key of -cert
//	-ca FILE         PEM roots to verify the proxy's server certificate (default: the system's)
//	-header NAME     also forge this header (repeatable), such as the names of a custom format
//	-timeout D       bound on the whole probe (default 30s)
//
// The probe forges every header name of the library's preset formats, their companion headers
// and the -header names, in batches small enough for common proxy header limits: each batch in
// one request per spelling (canonical, lower-case, '_' for '-') and one with them as request
// trailers, which count when the proxy turns them into headers; all without a client
// certificate and, with -cert, again with one.
//
// # Output
//
// One line per forged header that arrived, with the requests it arrived with:
//
//	arrived X-Ssl-Client-Cert: without certificate/canonical, without certificate/lower-case
//
// one line per request that did not reach the probe (a proxy that refuses clients without a
// certificate, say), and a last line "passed" or "FAILED" with the reason.
//
// # Exit status
//
// 0 when the probe passed; 1 when a forged header arrived; 3 when the probe was inconclusive (no
// request reached the probe route, or the service did not see the proxy as trusted); 2 for a bad
// flag or an unreadable file (the message goes to stderr).
package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
	"time"

	"github.com/certgate/mtls"
	"github.com/certgate/mtls/internal/certfile"
)

func main() { os.Exit(run(os.Args[1:], os.Stdout, os.Stderr)) }

// Exit statuses.
const (
	exitPassed       = 0
	exitForwarded    = 1
	exitUsage        = 2
	exitInconclusive = 3
)

// maxFile bounds the files read.
const maxFile = 1 << 20

type options struct {
	url, cert, key, ca string
	headers            []string
	timeout            time.Duration
}

func parseFlags(args []string, stderr io.Writer) (*options, error) {
	o := &options{}
	fs := flag.NewFlagSet("probe", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&o.url, "url", "", "the probe's URL as reached through the proxy (required)")
	fs.StringVar(&o.cert, "cert", "", "PEM client certificate (and chain): also probe while presenting it")
	fs.StringVar(&o.key, "key", "", "PEM private key of -cert")
	fs.StringVar(&o.ca, "ca", "", "PEM roots to verify the proxy's server certificate (default: the system's)")
	fs.Func("header", "also forge this header (repeatable)", func(s string) error {
		o.headers = append(o.headers, s)
		return nil
	})
	fs.DurationVar(&o.timeout, "timeout", 30*time.Second, "bound on the whole probe")
	if err := fs.Parse(args); err != nil {
		return nil, err
	}
	var errs []error
	if fs.NArg() > 0 {
		errs = append(errs, fmt.Errorf("unexpected arguments %q", fs.Args()))
	}
	if o.url == "" {
		errs = append(errs, errors.New("-url is required"))
	}
	if (o.cert == "") != (o.key == "") {
		errs = append(errs, errors.New("-cert and -key go together"))
	}
	if o.timeout <= 0 {
		errs = append(errs, errors.New("-timeout must be positive"))
	}
	return o, errors.Join(errs...)
}

// clients returns the client without a certificate and, with -cert, the one with.
func (o *options) clients() (*http.Client, *http.Client, error) {
	base := &tls.Config{MinVersion: tls.VersionTLS12}
	if o.ca != "" {
		data, err := certfile.Read(o.ca, maxFile)
		if err != nil {
			return nil, nil, err
		}
		roots := x509.NewCertPool()
		if !roots.AppendCertsFromPEM(data) {
			return nil, nil, fmt.Errorf("%s: no PEM certificate", o.ca)
		}
		base.RootCAs = roots
	}
	client := func(cfg *tls.Config) *http.Client {
		return &http.Client{
			Transport: &http.Transport{TLSClientConfig: cfg, ForceAttemptHTTP2: true},
			// A redirect is not the probe's answer: report it as it came.
			CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
		}
	}
	anon := client(base)
	if o.cert == "" {
		return anon, nil, nil
	}
	certPEM, err := certfile.Read(o.cert, maxFile)
	if err != nil {
		return nil, nil, err
	}
	keyPEM, err := certfile.Read(o.key, maxFile)
	if err != nil {
		return nil, nil, err
	}
	pair, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		return nil, nil, fmt.Errorf("-cert %s, -key %s: %w", o.cert, o.key, err)
	}
	withCert := base.Clone()
	withCert.Certificates = []tls.Certificate{pair}
	return anon, client(withCert), nil
}

func run(args []string, stdout, stderr io.Writer) int {
	o, err := parseFlags(args, stderr)
	if err != nil {
		if !errors.Is(err, flag.ErrHelp) {
			fmt.Fprintln(stderr, "probe:", err)
		}
		return exitUsage
	}
	anon, withCert, err := o.clients()
	if err != nil {
		fmt.Fprintln(stderr, "probe:", err)
		return exitUsage
	}
	opts := []mtls.ProbeOption{mtls.ProbeHeaders(o.headers...)}
	if withCert != nil {
		opts = append(opts, mtls.ProbeWithCertificate(withCert))
	}
	ctx, cancel := context.WithTimeout(context.Background(), o.timeout)
	defer cancel()
	rep, err := mtls.ProbeProxy(ctx, anon, o.url, opts...)
	if len(rep.Results) == 0 && err != nil { // nothing was sent: the arguments
		fmt.Fprintln(stderr, "probe:", err)
		return exitUsage
	}
	printReport(stdout, rep)
	switch {
	case err == nil:
		fmt.Fprintf(stdout, "passed: %d requests, none let a forged header through\n", len(rep.Results))
		return exitPassed
	case errors.Is(err, mtls.ErrProbeForwarded):
		fmt.Fprintln(stdout, "FAILED:", oneLine(err))
		return exitForwarded
	default:
		fmt.Fprintln(stdout, "FAILED:", oneLine(err))
		return exitInconclusive
	}
}

// printReport prints one line per arrived header, then one per request the probe did not answer.
func printReport(w io.Writer, rep *mtls.ProbeReport) {
	for _, name := range rep.Arrived() {
		var with []string
		for _, r := range rep.Results {
			for _, n := range r.Arrived {
				if n == name {
					with = append(with, r.Client+"/"+r.Spelling)
				}
			}
		}
		fmt.Fprintf(w, "arrived %s: %s\n", name, strings.Join(with, ", "))
	}
	for _, r := range rep.Results {
		if r.Truncated {
			fmt.Fprintf(w, "arrived more forged headers than the answer names: %s/%s, batch %d\n", r.Client, r.Spelling, r.Batch+1)
		}
		if !r.Answered {
			fmt.Fprintf(w, "not answered %s/%s, batch %d: %v\n", r.Client, r.Spelling, r.Batch+1, r.Err)
		}
	}
}

func oneLine(err error) string { return strings.ReplaceAll(err.Error(), "\n", "; ") }
