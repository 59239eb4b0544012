// Command whoami is an identity echo server: it authenticates each request by client certificate
// with github.com/certgate/mtls and answers with the verified identity as JSON. Point it at your
// own CA and certificates to see what the library accepts and why it refuses.
//
//	go run ./examples/whoami -tls-cert server.pem -tls-key server-key.pem -client-ca clients-ca.pem
//	curl --cacert server-ca.pem --cert client.pem --key client-key.pem https://127.0.0.1:8443/
//
// Behind a TLS-terminating proxy, -header reads the certificate from the proxy's header (one of
// the formats of mtls.HeaderFormat), believed only from -trusted-proxies. Without -tls-cert it then
// serves plain HTTP; with it, direct TLS clients are accepted too ("source" says which):
//
//	go run ./examples/whoami -client-ca clients-ca.pem -header nginx -trusted-proxies 127.0.0.1/32 -listen 127.0.0.1:8080
//
// Revocation is off unless asked for: -ocsp asks the OCSP responder named in each certificate,
// -ocsp-responder URL asks that responder instead, -crl (a file or an http URL; repeatable) and
// -crl-dp check CRLs. A certificate whose status cannot be established is refused with 503
// revocation_unavailable, unless -fail-open (dangerous) lets it through, flagged in the answer.
//
// SIGHUP reloads the files (-client-ca, -intermediates, -policy, -bindings) all at once: if one of
// them is bad, everything in force stays and the error is logged.
//
// Every path answers. A verified client gets 200 with its identity; in -optional mode a request
// without a certificate gets 200 with "authenticated": false; refusals are the library's
// application/problem+json response with a stable reason code. A bad flag or an unreadable file
// exits non-zero with a message on stderr.
package main

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/certgate/mtls"
	"github.com/certgate/mtls/examples/internal/clientflags"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	os.Exit(run(ctx, os.Args[1:], os.Stderr, nil))
}

// options are the command-line flags.
type options struct {
	listen        string
	tlsCert       string
	tlsKey        string
	clientCA      string
	intermediates string
	pins          []string // SHA-256 fingerprints of individually trusted client certificates
	optional      bool

	header         string // header format name; empty: header mode off
	headerName     string
	trustedProxies string
	headerFormat   mtls.Format
	proxyPrefixes  []netip.Prefix

	rev clientflags.Revocation // -ocsp, -ocsp-responder, -crl, -crl-dp, -fail-open

	policyFile string // JSON policy document; empty: none

	bindingsPath string             // principal bindings: a directory of PEM files or a JSON map
	bindings     *mtls.BindingStore // loaded from bindingsPath by parseFlags
}

func parseFlags(args []string, stderr io.Writer) (*options, error) {
	o := &options{}
	fs := flag.NewFlagSet("whoami", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&o.listen, "listen", "127.0.0.1:8443", "address to listen on")
	fs.StringVar(&o.tlsCert, "tls-cert", "", "server certificate PEM file (serve HTTPS and read client certificates from TLS)")
	fs.StringVar(&o.tlsKey, "tls-key", "", "server private key PEM file")
	fs.StringVar(&o.clientCA, "client-ca", "", "PEM file of the CAs trusted to issue client certificates (required)")
	fs.StringVar(&o.intermediates, "intermediates", "", "optional PEM file of intermediate CAs for clients that send their leaf alone")
	clientflags.Pin(fs, &o.pins)
	fs.BoolVar(&o.optional, "optional", false, "let requests without a client certificate through (as unauthenticated)")
	fs.StringVar(&o.header, "header", "", "also accept the certificate from a trusted proxy's header in this format: "+strings.Join(mtls.HeaderFormatNames(), ", "))
	fs.StringVar(&o.headerName, "header-name", "", "name of the header carrying the certificate (default: the format's own)")
	fs.StringVar(&o.trustedProxies, "trusted-proxies", "", "comma-separated CIDR prefixes (or addresses) of the proxies trusted to set the header (required with -header)")
	o.rev.Register(fs)
	fs.StringVar(&o.policyFile, "policy", "", "JSON policy document that every identity must satisfy (refusals are 403 policy_denied; see docs/policies.md)")
	fs.StringVar(&o.bindingsPath, "bindings", "", "principal bindings: a directory of <principal>.pem certificates or a JSON file {\"principal\": [\"<sha256>\", ...]} (reloaded with the CAs on SIGHUP)")
	fs.BoolVar(&o.rev.FailOpen, "fail-open", false, "DANGEROUS: accept certificates whose revocation status cannot be established (flagged in the answer and the log)")
	if err := fs.Parse(args); err != nil {
		return nil, err
	}
	if fs.NArg() > 0 {
		return nil, fmt.Errorf("unexpected arguments: %q", fs.Args())
	}
	var errs []error
	if o.clientCA == "" {
		errs = append(errs, errors.New("-client-ca is required"))
	}
	if (o.tlsCert == "") != (o.tlsKey == "") {
		errs = append(errs, errors.New("-tls-cert and -tls-key go together"))
	}
	if o.tlsCert == "" && o.header == "" {
		errs = append(errs, errors.New("-tls-cert and -tls-key are required to read client certificates from TLS (or -header to read them from a trusted proxy)"))
	}
	errs = append(errs, o.parseHeaderFlags()...)
	if err := o.rev.Check(); err != nil {
		errs = append(errs, err)
	}
	if o.policyFile != "" {
		if _, err := mtls.LoadPolicyFile(o.policyFile); err != nil {
			errs = append(errs, err)
		}
	}
	if o.bindingsPath != "" {
		b, err := mtls.NewBindingStore(o.bindingsPath)
		if err != nil {
			errs = append(errs, err)
		}
		o.bindings = b
	}
	return o, errors.Join(errs...)
}

// parseHeaderFlags checks -header, -header-name and -trusted-proxies.
func (o *options) parseHeaderFlags() []error {
	var errs []error
	if o.header == "" {
		if o.headerName != "" || o.trustedProxies != "" {
			errs = append(errs, errors.New("-header-name and -trusted-proxies need -header"))
		}
		return errs
	}
	f, err := mtls.HeaderFormat(o.header)
	if err != nil {
		errs = append(errs, fmt.Errorf("-header: %w", err))
	}
	o.headerFormat = f
	if o.trustedProxies == "" {
		errs = append(errs, errors.New("-header needs -trusted-proxies: the header is believed only from those peers"))
	}
	for _, s := range strings.Split(o.trustedProxies, ",") {
		if s = strings.TrimSpace(s); s == "" {
			continue
		}
		p, err := netip.ParsePrefix(s)
		if err != nil {
			a, aerr := netip.ParseAddr(s)
			if aerr != nil {
				errs = append(errs, fmt.Errorf("-trusted-proxies: %q is not a CIDR prefix or an address", s))
				continue
			}
			p = netip.PrefixFrom(a, a.BitLen())
		}
		o.proxyPrefixes = append(o.proxyPrefixes, p)
	}
	return errs
}

// config turns the options into the middleware's configuration.
func (o *options) config(logger *slog.Logger) mtls.Config {
	cfg := mtls.Config{
		RootCAFiles:  []string{o.clientCA},
		PinnedSHA256: o.pins,
		Optional:     o.optional,
		Logger:       logger,
	}
	if o.intermediates != "" {
		cfg.IntermediateFiles = []string{o.intermediates}
	}
	cfg.Revocation = o.rev.Config()
	if o.policyFile != "" {
		cfg.PolicyFiles = []string{o.policyFile} // checked by parseFlags, read again on SIGHUP
	}
	if o.bindings != nil {
		cfg.Principals = o.bindings
	}
	if o.headerFormat != nil {
		cfg.Header = &mtls.HeaderConfig{Format: o.headerFormat, TrustedProxies: o.proxyPrefixes}
		if o.headerName != "" {
			cfg.Header.Names = []string{o.headerName}
		}
	}
	return cfg
}

// run serves until ctx ends and returns the exit code. ready, if set, receives the address once
// the server listens.
func run(ctx context.Context, args []string, stderr io.Writer, ready func(addr string)) int {
	o, err := parseFlags(args, stderr)
	if errors.Is(err, flag.ErrHelp) {
		return 0
	}
	if err != nil {
		fmt.Fprintf(stderr, "whoami: %v\n", err)
		return 2
	}
	logger := slog.New(slog.NewTextHandler(stderr, nil))
	m, err := mtls.New(o.config(logger))
	if err != nil {
		fmt.Fprintf(stderr, "whoami: %v\n", err)
		return 1
	}
	defer m.Close()
	srv := &http.Server{
		Handler:           m.Handler(http.HandlerFunc(whoami)),
		ConnContext:       mtls.ConnContext, // trusted proxies are judged by the connection
		ReadHeaderTimeout: 10 * time.Second,
		ErrorLog:          slog.NewLogLogger(logger.Handler(), slog.LevelWarn),
	}
	if o.tlsCert != "" {
		pair, err := tls.LoadX509KeyPair(o.tlsCert, o.tlsKey)
		if err != nil {
			fmt.Fprintf(stderr, "whoami: %v\n", err)
			return 1
		}
		srv.TLSConfig = m.TLSConfig(&tls.Config{Certificates: []tls.Certificate{pair}})
	}
	ln, err := net.Listen("tcp", o.listen)
	if err != nil {
		fmt.Fprintf(stderr, "whoami: %v\n", err)
		return 1
	}
	errc := make(chan error, 1)
	go func() {
		if o.tlsCert != "" {
			errc <- srv.ServeTLS(ln, "", "")
		} else {
			errc <- srv.Serve(ln)
		}
	}()
	scheme := "https"
	if o.tlsCert == "" {
		scheme = "http"
	}
	logger.Info("whoami listening", "url", scheme+"://"+ln.Addr().String()+"/")
	if ready != nil {
		ready(ln.Addr().String())
	}
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
	for {
		select {
		case err := <-errc:
			fmt.Fprintf(stderr, "whoami: %v\n", err)
			return 1
		case <-hup:
			reload(m)
		case <-ctx.Done():
			shutdown, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			_ = srv.Shutdown(shutdown)
			return 0
		}
	}
}

// reload reads the CA files, the policy document and the principal bindings again, all or
// nothing: on error the ones in force stay. The middleware logs the outcome.
func reload(m *mtls.Middleware) {
	_ = m.Reload()
}

// identity is the JSON answer. Its keys are a stable contract: scripts depend on them.
type identity struct {
	Authenticated bool     `json:"authenticated"`
	Source        string   `json:"source,omitempty"`
	Format        string   `json:"format,omitempty"` // header format, for source "header"
	Proxy         string   `json:"proxy,omitempty"`  // forwarding proxy's address, for source "header"
	Subject       string   `json:"subject,omitempty"`
	Issuer        string   `json:"issuer,omitempty"`
	Serial        string   `json:"serial,omitempty"`
	SHA256        string   `json:"sha256,omitempty"`
	X5tS256       string   `json:"x5t#S256,omitempty"`
	DNS           []string `json:"dns"`
	Emails        []string `json:"emails"`
	URIs          []string `json:"uris"`
	IPs           []string `json:"ips"`
	SPIFFEID      string   `json:"spiffe_id,omitempty"`
	NotAfter      string   `json:"not_after,omitempty"`
	Pinned        bool     `json:"pinned,omitempty"`
	// Principal is the account the certificate stands for, when a principal mapping resolved one.
	Principal string `json:"principal,omitempty"`
	// Revocation is "stale" or "fail-open" when the request passed without fresh revocation
	// status, absent otherwise.
	Revocation string `json:"revocation,omitempty"`
}

func whoami(w http.ResponseWriter, r *http.Request) {
	var out any = struct {
		Authenticated bool `json:"authenticated"`
	}{false}
	if id, ok := mtls.FromContext(r.Context()); ok {
		out = describe(id)
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	_ = enc.Encode(out)
}

func describe(id *mtls.Identity) identity {
	out := identity{
		Authenticated: true,
		Source:        string(id.Source),
		Format:        id.Format,
		Subject:       id.Leaf.Subject.String(),
		Issuer:        id.Leaf.Issuer.String(),
		Serial:        id.Leaf.SerialNumber.Text(16), // the contract: hex digits, as openssl -serial prints them
		SHA256:        id.SHA256,
		X5tS256:       id.X5tS256,
		Principal:     id.Principal,
		DNS:           append([]string{}, id.DNSNames...),
		Emails:        append([]string{}, id.EmailAddresses...),
		URIs:          []string{},
		IPs:           []string{},
		SPIFFEID:      id.SPIFFEID,
		NotAfter:      id.Leaf.NotAfter.UTC().Format(time.RFC3339),
		Pinned:        id.Pinned,
	}
	if id.Proxy.IsValid() {
		out.Proxy = id.Proxy.String()
	}
	for _, u := range id.URIs {
		out.URIs = append(out.URIs, u.String())
	}
	switch {
	case id.Revocation.FailOpen:
		out.Revocation = "fail-open"
	case id.Revocation.Stale:
		out.Revocation = "stale"
	}
	for _, ip := range id.IPAddresses {
		out.IPs = append(out.IPs, ip.String())
	}
	return out
}
