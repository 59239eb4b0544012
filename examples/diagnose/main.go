// Command diagnose tells, without a server or a handshake, what github.com/certgate/mtls makes of
// a client certificate: it runs the certificate through the middleware's pipeline under the trust
// flags of examples/whoami and prints each step's verdict, the refusing step's full reason (the
// one the client is never told), and on success the identity.
//
//	go run ./examples/diagnose -client-ca clients-ca.pem client.pem
//	go run ./examples/diagnose -client-ca clients-ca.pem -intermediates issuing-ca.pem -at 2027-01-15T00:00:00Z client.pem
//	go run ./examples/diagnose -pin "$(cat partner.sha256)" -json partner.pem
//
// The certificate file is PEM: the leaf first, then the chain the client sends, if any (as curl's
// --cert file holds it). It is judged as if presented on a direct TLS connection. The flags mean
// what they mean to whoami, and may come before or after the file:
//
//	-client-ca FILE        PEM trust roots for client certificates (this or -pin is required)
//	-intermediates FILE    PEM intermediates, for clients that send their leaf alone
//	-pin SHA256            trust the leaf with this SHA-256 fingerprint (repeatable; hex, colons
//	                       allowed, or the line openssl x509 -noout -fingerprint -sha256 prints)
//	-policy FILE           a JSON policy document the identity must satisfy
//	-bindings PATH         principal bindings: a directory of <principal>.pem or a JSON map
//	-ocsp                  check revocation by OCSP, asking the certificate's responder (AIA)
//	-ocsp-responder URL    check revocation by OCSP, asking this responder
//	-crl SOURCE            check revocation against a CRL file or http(s) URL (repeatable)
//	-crl-dp                check revocation against the certificate's CRL distribution points
//	-fail-open             DANGEROUS: accept when revocation status is unavailable
//
// and two of its own:
//
//	-at RFC3339            judge at this time instead of now (Config.Now): "will it pass next
//	                       week?"; CRL files and OCSP answers must be fresh at that time too
//	-json                  print the report as JSON (its shape is below)
//
// Revocation flags other than CRL files query the network, as the server would.
//
// # Output
//
// One line per step: claim, screen, verify, revocation, principal, policy, with the verdict
// "ok", "REFUSED" (then the stable reason code and the full reason), "not reached" (after a
// refusal) or "off" (not configured); then "accepted" or "refused" with the time judged at, and
// on success the identity:
//
//	claim       ok      2 certificates presented (leaf "CN=alice", then "CN=Issuing CA")
//	screen      ok
//	verify      ok      chain "CN=alice" <- "CN=Issuing CA" <- "CN=Root CA"
//	revocation  off     no -ocsp, -ocsp-responder, -crl or -crl-dp
//	principal   off     no -bindings
//	policy      off     no -policy
//	accepted at 2026-12-02T18:00:00Z
//	subject     CN=alice
//	...
//
// With -json the same report is one JSON object (two-space indented) whose keys are stable:
// "accepted" (bool), "at" (RFC 3339), for a refusal "status" (the HTTP status), "reason" (the
// stable reason code), "step" and "error" (the full reason); "steps", a list of {"name",
// "verdict" ("ok", "refused", "not_reached" or "off"), "note"}; and on success "identity" with
// "subject", "issuer", "serial" (0x-prefixed hex, as policies and deny lists take it), "sha256",
// "dns", "emails", "uris", "ips" (lists, possibly empty), "spiffe_id", "chain" (subjects, leaf
// first), "pinned", "principal", "not_after" (RFC 3339), "expires_soon", and "revocation" with
// "checked", "source" ("OCSP" or "CRL": the oldest answer used), "age" (a Go duration),
// "stale" and "fail_open". Empty strings and false flags are left out, except "accepted".
//
// # Exit status
//
// 0 when the certificate is accepted, 1 when it is refused, 2 for a bad flag, an unreadable file
// or a configuration the library refuses (the message goes to stderr).
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"time"

	"github.com/certgate/mtls"
	"github.com/certgate/mtls/examples/internal/clientflags"
	"github.com/certgate/mtls/internal/certfile"
	"github.com/certgate/mtls/mtlstest"
)

func main() { os.Exit(run(os.Args[1:], os.Stdout, os.Stderr)) }

// maxCertFile bounds the certificate file: more than the longest chain the middleware accepts.
const maxCertFile = 1 << 20

// options are the command-line flags.
type options struct {
	certFile      string
	clientCA      string
	intermediates string
	pins          []string
	policyFile    string
	bindingsPath  string
	rev           clientflags.Revocation
	at            time.Time // zero: now
	json          bool
}

func parseFlags(args []string, stderr io.Writer) (*options, error) {
	o := &options{}
	fs := flag.NewFlagSet("diagnose", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprintln(fs.Output(), "usage: diagnose [flags] client.pem")
		fs.PrintDefaults()
	}
	fs.StringVar(&o.clientCA, "client-ca", "", "PEM file of the CAs trusted to issue client certificates (this or -pin is required)")
	fs.StringVar(&o.intermediates, "intermediates", "", "optional PEM file of intermediate CAs for clients that send their leaf alone")
	clientflags.Pin(fs, &o.pins)
	fs.StringVar(&o.policyFile, "policy", "", "JSON policy document that the identity must satisfy")
	fs.StringVar(&o.bindingsPath, "bindings", "", "principal bindings: a directory of <principal>.pem certificates or a JSON file {\"principal\": [\"<sha256>\", ...]}")
	o.rev.Register(fs)
	fs.BoolVar(&o.rev.FailOpen, "fail-open", false, "DANGEROUS: accept certificates whose revocation status cannot be established")
	fs.Func("at", "judge at this time (RFC 3339, such as 2027-01-15T00:00:00Z) instead of now", func(s string) error {
		t, err := time.Parse(time.RFC3339, s)
		o.at = t
		return err
	})
	fs.BoolVar(&o.json, "json", false, "print the report as JSON")
	// The certificate file may come first: flags after it are parsed too.
	var files []string
	for {
		if err := fs.Parse(args); err != nil {
			return nil, err
		}
		if fs.NArg() == 0 {
			break
		}
		files, args = append(files, fs.Arg(0)), fs.Args()[1:]
	}
	var errs []error
	if len(files) != 1 {
		errs = append(errs, fmt.Errorf("want one certificate file, got %d arguments (usage: diagnose [flags] client.pem)", len(files)))
	} else {
		o.certFile = files[0]
	}
	if o.clientCA == "" && len(o.pins) == 0 {
		errs = append(errs, errors.New("-client-ca or -pin is required"))
	}
	if err := o.rev.Check(); err != nil {
		errs = append(errs, err)
	}
	return o, errors.Join(errs...)
}

// config turns the options into the middleware's configuration, judging at now.
func (o *options) config(now time.Time) (mtls.Config, error) {
	cfg := mtls.Config{
		PinnedSHA256: o.pins,
		Now:          func() time.Time { return now },
		Revocation:   o.rev.Config(),
	}
	if o.clientCA != "" {
		cfg.RootCAFiles = []string{o.clientCA}
	}
	if o.intermediates != "" {
		cfg.IntermediateFiles = []string{o.intermediates}
	}
	if o.policyFile != "" {
		cfg.PolicyFiles = []string{o.policyFile}
	}
	if o.bindingsPath != "" {
		b, err := mtls.NewBindingStore(o.bindingsPath)
		if err != nil {
			return cfg, err
		}
		cfg.Principals = b
	}
	return cfg, nil
}

// run diagnoses the certificate named in args and returns the exit status.
func run(args []string, stdout, stderr io.Writer) int {
	o, err := parseFlags(args, stderr)
	if errors.Is(err, flag.ErrHelp) {
		return 0
	}
	if err != nil {
		fmt.Fprintf(stderr, "diagnose: %v\n", err)
		return 2
	}
	rep, err := diagnose(o)
	if err != nil {
		fmt.Fprintf(stderr, "diagnose: %v\n", err)
		return 2
	}
	if o.json {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		_ = enc.Encode(rep)
	} else {
		rep.print(stdout)
	}
	if !rep.Accepted {
		return 1
	}
	return 0
}

// diagnose runs the certificate file of o through a middleware configured by o. An error is a
// problem of the input (exit 2), not a refusal.
func diagnose(o *options) (*report, error) {
	data, err := certfile.Read(o.certFile, maxCertFile)
	if err != nil {
		return nil, err
	}
	certs, err := certfile.Certificates(data)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", o.certFile, err)
	}
	now := o.at
	if now.IsZero() {
		now = time.Now()
	}
	cfg, err := o.config(now)
	if err != nil {
		return nil, err
	}
	var ev mtls.Event
	var id *mtls.Identity
	cfg.OnDecision = func(_ context.Context, e mtls.Event) { ev = e }
	cfg.Logger = slog.New(slog.DiscardHandler) // the report says it all: no log record beside it
	m, err := mtls.New(cfg)
	if err != nil {
		return nil, err
	}
	defer m.Close()
	// The handler, rather than Authenticate, so that the decision's event says which revocation
	// source answered.
	h := m.Handler(http.HandlerFunc(func(_ http.ResponseWriter, r *http.Request) {
		id, _ = mtls.FromContext(r.Context())
	}))
	h.ServeHTTP(httptest.NewRecorder(), mtlstest.NewRequest(http.MethodGet, "https://diagnose.invalid/", certs...))
	return newReport(o, now, certs, &ev, id), nil
}
