// Command loadtest measures what the middleware costs a real server on 127.0.0.1, bounded in time:
//
//	go run ./examples/loadtest                     # every scenario, 3 rounds of 3 s each
//	go run ./examples/loadtest -duration 5s -rounds 5 -conns 16
//	go run ./examples/loadtest -scenarios header -format haproxy -cpuprofile /tmp/profiles
//
// Each scenario runs a bare server and the same server with the middleware, one after the other,
// in alternating order, for the given number of rounds:
//
//   - tls: HTTPS keep-alive. Bare is Go's own verified mutual TLS (tls.RequireAndVerifyClientCert)
//     and a handler; with the middleware, its TLS helper (Middleware.TLSConfig) and
//     Middleware.Handler. Every request after a connection's first is a cache hit.
//   - header: plain HTTP keep-alive from a trusted proxy (127.0.0.1) that forwards the client
//     certificate in a header (-format). Bare reads nothing; with the middleware, header mode.
//   - handshake: HTTPS without keep-alive, a full TLS 1.3 handshake (no resumption) per request.
//     Bare is Go's own verified mutual TLS, which verifies the chain in every handshake; with the
//     middleware, its TLS helper, which caches the verification.
//   - hostile-decoys, hostile-ca-name, hostile-ca-name-p256: the middleware's server, with a legit
//     client as "middleware" that presents a new certificate of the service's CA on each
//     connection (a cold handshake: nothing of it is cached) and a hostile client as
//     "middleware-hostile", each of whose connections must be refused (at the handshake, or
//     by the request). The hostile clients hold no key of the service's CAs: hostile-decoys
//     presents an RSA-8192 leaf under a chain of decoy CAs; hostile-ca-name an RSA-8192 leaf under
//     forged CAs that bear the names of the service's CAs, with a second one of the issuer's name;
//     hostile-ca-name-p256 the same with a P-256 leaf, which the handshake lets through to the
//     request. A hostile client presents a new leaf on each connection (so that the server cannot
//     reuse a cached refusal) and sends a random signature (a forger need not compute one: the
//     server pays for checking it). The ratio is then hostile / legit, server CPU per handshake.
//   - hostile-verify-many: the same, against a server whose base TLS config verifies
//     (tls.RequireAndVerifyClientCert, the client root as ClientCAs), with a hostile P-256 leaf
//     under 99 forged CAs of the issuer's name with P-521 keys: crypto/tls would try each as an
//     intermediate before any hook of the middleware, which verifies after its screen instead.
//
// Every server runs in a child process of its own (this program, run again), so that its CPU time
// is its own: the child reads its CPU time (getrusage) when the load starts and ends, and counts
// the requests it served and the connections it accepted. The report gives, per scenario and variant, the median over the rounds
// of requests per second, latency p50 and p99 as the client sees them, and server CPU time per
// request (per connection, without keep-alive: per handshake); and the median over the rounds of the ratios middleware/bare, each taken within one
// round. Client and server share the machine's cores, as on any single host: compare ratios, not
// absolute figures, and compare them within one run.
//
// Any refused or failed request is an error: the command then prints the first ones and exits 1.
package main

import (
	"bufio"
	"context"
	"crypto/tls"
	"errors"
	"flag"
	"fmt"
	"io"
	"log"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"text/tabwriter"
	"time"

	"github.com/certgate/mtls"
	"github.com/certgate/mtls/mtlstest"
)

// serveEnv, when set, makes the program a server child: its value names the variant to serve.
const serveEnv = "MTLS_LOADTEST_SERVE"

func main() {
	if v := os.Getenv(serveEnv); v != "" {
		if err := serve(v, os.Getenv(dirEnv), os.Getenv(profileEnv), os.Stdin, os.Stdout); err != nil {
			log.Fatal(err)
		}
		return
	}
	if err := run(os.Args[1:], os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "loadtest:", err)
		os.Exit(1)
	}
}

type options struct {
	duration  time.Duration
	rounds    int
	conns     int
	format    string
	scenarios []string
	maxReqs   int
	profiles  string // directory for the servers' CPU profiles; empty: none
}

// scenario is one comparison: the same client load against a bare server and a middleware one.
type scenario struct {
	name      string
	bare, lib string // server variants (see serve)
	tls       bool   // the client speaks HTTPS and presents its certificate
	keepAlive bool
	// hostile names the chain the client of the lib variant presents (see pki.hostile), each of
	// whose requests must be refused; empty: the client is legit.
	hostile string
}

var allScenarios = []scenario{
	{name: "tls", bare: variantTLSBare, lib: variantTLSMiddleware, tls: true, keepAlive: true},
	{name: "header", bare: variantHTTPBare, lib: variantHeaderMiddleware, keepAlive: true},
	{name: "handshake", bare: variantTLSBare, lib: variantTLSMiddleware, tls: true},
	{name: "hostile-decoys", bare: variantTLSMiddleware, lib: variantTLSMiddlewareHostile, tls: true, hostile: hostileDecoys},
	{name: "hostile-ca-name", bare: variantTLSMiddleware, lib: variantTLSMiddlewareHostile, tls: true, hostile: hostileCAName},
	{name: "hostile-ca-name-p256", bare: variantTLSMiddleware, lib: variantTLSMiddlewareHostile, tls: true, hostile: hostileCANameP256},
	{name: "hostile-verify-many", bare: variantTLSMiddlewareVerify, lib: variantTLSMiddlewareVerifyHostile, tls: true, hostile: hostileManyCAs},
}

func parseFlags(args []string, out io.Writer) (options, error) {
	o := options{}
	fs := flag.NewFlagSet("loadtest", flag.ContinueOnError)
	fs.SetOutput(out)
	fs.DurationVar(&o.duration, "duration", 3*time.Second, "how long each variant of each scenario runs per round (100ms to 5m)")
	fs.IntVar(&o.rounds, "rounds", 3, "rounds (1 to 20); each runs every scenario's two variants, in alternating order")
	fs.IntVar(&o.conns, "conns", 8, "concurrent client connections, each with one request in flight (1 to 256)")
	fs.StringVar(&o.format, "format", "nginx", "header format of the header scenario: "+strings.Join(mtls.HeaderFormatNames(), ", "))
	fs.StringVar(&o.profiles, "cpuprofile", "", "write each server's CPU profile, while loaded, to this directory (scenario-variant-round.pprof; go tool pprof reads them)")
	fs.IntVar(&o.maxReqs, "max-requests", 2_000_000, "at most this many requests per variant and round, whatever the duration (1000 to 100000000)")
	names := make([]string, len(allScenarios))
	for i, s := range allScenarios {
		names[i] = s.name
	}
	list := fs.String("scenarios", strings.Join(names, ","), "comma-separated scenarios to run: "+strings.Join(names, ", "))
	if err := fs.Parse(args); err != nil {
		return o, err
	}
	if fs.NArg() > 0 {
		return o, fmt.Errorf("unexpected argument %q", fs.Arg(0))
	}
	switch {
	case o.duration < 100*time.Millisecond || o.duration > 5*time.Minute:
		return o, errors.New("-duration must be between 100ms and 5m")
	case o.rounds < 1 || o.rounds > 20:
		return o, errors.New("-rounds must be between 1 and 20")
	case o.conns < 1 || o.conns > 256:
		return o, errors.New("-conns must be between 1 and 256")
	case o.maxReqs < 1000 || o.maxReqs > 100_000_000:
		return o, errors.New("-max-requests must be between 1000 and 100000000")
	}
	if _, err := mtls.HeaderFormat(o.format); err != nil {
		return o, err
	}
	for _, n := range strings.Split(*list, ",") {
		n = strings.TrimSpace(n)
		if !slices.Contains(names, n) {
			return o, fmt.Errorf("unknown scenario %q (have %s)", n, strings.Join(names, ", "))
		}
		if !slices.Contains(o.scenarios, n) {
			o.scenarios = append(o.scenarios, n)
		}
	}
	return o, nil
}

func run(args []string, out io.Writer) error {
	o, err := parseFlags(args, out)
	if err != nil {
		return err
	}
	if o.profiles != "" {
		if err := os.MkdirAll(o.profiles, 0o700); err != nil {
			return err
		}
	}
	dir, err := os.MkdirTemp("", "mtls-loadtest-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	pki, err := newPKI(dir, o.format)
	if err != nil {
		return err
	}
	self, err := os.Executable()
	if err != nil {
		return err
	}
	fmt.Fprintf(out, "loadtest: %d round(s), %v per variant, %d connection(s), header format %s\n\n",
		o.rounds, o.duration, o.conns, o.format)

	results := map[string][]result{} // by scenario name + "/" + variant
	var ratios = map[string][]ratio{}
	for round := range o.rounds {
		for _, s := range allScenarios {
			if !slices.Contains(o.scenarios, s.name) {
				continue
			}
			order := []string{s.bare, s.lib}
			if round%2 == 1 {
				order = []string{s.lib, s.bare}
			}
			got := map[string]result{}
			for _, variant := range order {
				profile := ""
				if o.profiles != "" {
					profile = filepath.Join(o.profiles, fmt.Sprintf("%s-%s-%d.pprof", s.name, variant, round+1))
				}
				r, err := measure(self, dir, variant, profile, s, pki, o)
				if err != nil {
					return fmt.Errorf("%s, %s, round %d: %w", s.name, variant, round+1, err)
				}
				got[variant] = r
				results[s.name+"/"+variant] = append(results[s.name+"/"+variant], r)
			}
			ratios[s.name] = append(ratios[s.name], ratioOf(got[s.lib], got[s.bare]))
		}
	}
	report(out, o, results, ratios)
	return nil
}

// result is what one variant did in one round.
type result struct {
	requests  int           // completed by the client
	elapsed   time.Duration // of the client's load
	p50, p99  time.Duration
	served    int64         // counted by the server
	accepted  int64         // connections, counted by the server
	keepAlive bool          // of the scenario: the CPU is per request, else per connection
	serverCPU time.Duration // user + system, while the load ran; 0 where it cannot be read
}

func (r result) rate() float64 { return float64(r.requests) / r.elapsed.Seconds() }

// cpuPerRequest is the server's CPU time per request, or without keep-alive per connection (a
// refused handshake serves no request).
func (r result) cpuPerRequest() time.Duration {
	n := r.served
	if !r.keepAlive {
		n = r.accepted
	}
	if n == 0 {
		return 0
	}
	return r.serverCPU / time.Duration(n)
}

// ratio is middleware / bare within one round.
type ratio struct{ rate, cpu float64 }

func ratioOf(lib, bare result) ratio {
	r := ratio{rate: lib.rate() / bare.rate()}
	if bare.cpuPerRequest() > 0 {
		r.cpu = float64(lib.cpuPerRequest()) / float64(bare.cpuPerRequest())
	}
	return r
}

// measure starts the server variant in a child process, loads it for o.duration and stops it.
func measure(self, dir, variant, profile string, s scenario, pki *pki, o options) (result, error) {
	ctx, cancel := context.WithTimeout(context.Background(), o.duration+30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, self)
	// A child built with -race would sleep a second before exiting (GORACE atexit_sleep_ms).
	cmd.Env = append(os.Environ(), serveEnv+"="+variant, dirEnv+"="+dir, profileEnv+"="+profile,
		"GORACE="+strings.TrimSpace(os.Getenv("GORACE")+" atexit_sleep_ms=0"))
	cmd.Stderr = os.Stderr
	stdin, err := cmd.StdinPipe()
	if err != nil {
		return result{}, err
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return result{}, err
	}
	if err := cmd.Start(); err != nil {
		return result{}, err
	}
	reaped := false
	defer func() { // on every error path: end the child and reap it
		if !reaped {
			stdin.Close()
			_ = cmd.Wait()
		}
	}()
	lines := bufio.NewScanner(stdout)
	addr, err := expect(lines, "listening")
	if err != nil {
		if ctx.Err() != nil {
			err = fmt.Errorf("server gave no address within %v: %w", o.duration+30*time.Second, ctx.Err())
		}
		return result{}, err
	}

	hostile := variant == s.lib && s.hostile != ""
	client := pki.newClient(s, hostile)
	defer client.CloseIdleConnections()
	scheme := "http"
	if s.tls {
		scheme = "https"
	}
	url := scheme + "://" + addr + "/"
	// Warm up: one request per connection, so that keep-alive scenarios measure cached requests
	// and the first handshakes are not counted.
	if err := warmUp(client, url, pki, s, hostile, o.conns); err != nil {
		return result{}, err
	}
	if _, err := fmt.Fprintln(stdin, "start"); err != nil {
		return result{}, err
	}
	if _, err := expect(lines, "started"); err != nil {
		return result{}, err
	}
	res, err := load(client, url, pki, s, hostile, o)
	if err != nil {
		return result{}, err
	}
	if _, err := fmt.Fprintln(stdin, "stop"); err != nil {
		return result{}, err
	}
	stats, err := expect(lines, "stopped")
	if err != nil {
		return result{}, err
	}
	var cpuNS int64
	res.keepAlive = s.keepAlive
	if _, err := fmt.Sscanf(stats, "%d %d %d", &res.served, &cpuNS, &res.accepted); err != nil {
		return result{}, fmt.Errorf("server reported %q: %w", stats, err)
	}
	res.serverCPU = time.Duration(cpuNS)
	// The child's exit status counts: a panic, or a data race found by a -race build, fails the run.
	stdin.Close()
	reaped = true
	if err := cmd.Wait(); err != nil {
		return result{}, fmt.Errorf("server %s: %w", variant, err)
	}
	return res, nil
}

// expect reads the child's next line, which must start with word, and returns the rest.
func expect(lines *bufio.Scanner, word string) (string, error) {
	if !lines.Scan() {
		if err := lines.Err(); err != nil {
			return "", err
		}
		return "", fmt.Errorf("server exited before %q", word)
	}
	rest, ok := strings.CutPrefix(lines.Text(), word)
	if !ok {
		return "", fmt.Errorf("server said %q, want %q", lines.Text(), word)
	}
	return strings.TrimSpace(rest), nil
}

func warmUp(client *http.Client, url string, pki *pki, s scenario, hostile bool, conns int) error {
	var wg sync.WaitGroup
	errs := make([]error, conns)
	for i := range conns {
		wg.Go(func() { errs[i] = get(client, url, pki, s, hostile) })
	}
	wg.Wait()
	return errors.Join(errs...)
}

// load runs o.conns workers, each with one request in flight, until o.duration has passed or
// o.maxReqs requests are done.
func load(client *http.Client, url string, pki *pki, s scenario, hostile bool, o options) (result, error) {
	perWorker := max(1, o.maxReqs/o.conns)
	samples := make([][]time.Duration, o.conns)
	errs := make([]error, o.conns)
	start := time.Now()
	deadline := start.Add(o.duration)
	var wg sync.WaitGroup
	for i := range o.conns {
		wg.Go(func() {
			lat := make([]time.Duration, 0, min(perWorker, 1<<16))
			for n := 0; n < perWorker; n++ {
				t := time.Now()
				if n > 0 && !t.Before(deadline) { // every worker makes one request at least
					break
				}
				if err := get(client, url, pki, s, hostile); err != nil {
					errs[i] = err
					break
				}
				lat = append(lat, time.Since(t))
			}
			samples[i] = lat
		})
	}
	wg.Wait()
	elapsed := time.Since(start)
	if err := errors.Join(errs...); err != nil {
		return result{}, err
	}
	all := slices.Concat(samples...)
	if len(all) == 0 {
		return result{}, errors.New("no request completed")
	}
	slices.Sort(all)
	return result{
		requests: len(all),
		elapsed:  elapsed,
		p50:      percentile(all, 50),
		p99:      percentile(all, 99),
	}, nil
}

// percentile returns the p-th percentile (nearest rank) of sorted samples.
func percentile(sorted []time.Duration, p int) time.Duration {
	return sorted[max(0, (len(sorted)*p+99)/100-1)]
}

// get makes one request and requires 200 "ok"; from a hostile client, a refusal (of the handshake,
// or a status other than 200).
func get(client *http.Client, url string, pki *pki, s scenario, hostile bool) error {
	req, err := http.NewRequest(http.MethodGet, url, nil)
	if err != nil {
		return err
	}
	if !s.tls {
		for k, v := range pki.header {
			req.Header[k] = v
		}
	}
	res, err := client.Do(req)
	if hostile {
		if err != nil {
			return nil // refused at the handshake
		}
		res.Body.Close()
		if res.StatusCode == http.StatusOK {
			return errors.New("a hostile client was accepted")
		}
		return nil
	}
	if err != nil {
		return err
	}
	body, err := io.ReadAll(io.LimitReader(res.Body, 512))
	res.Body.Close()
	if err != nil {
		return err
	}
	if res.StatusCode != http.StatusOK || string(body) != "ok\n" {
		return fmt.Errorf("status %d: %q", res.StatusCode, body)
	}
	return nil
}

// pki is what the client side needs: its certificate, the server's CA and the header a proxy
// would forward.
type pki struct {
	leaf     *mtlstest.Leaf
	serverCA *mtlstest.CA
	header   http.Header
	hostile  map[string]func() tls.Certificate // by scenario.hostile
	fresh    func() tls.Certificate            // a new legit certificate
}

// newPKI mints a client CA with an intermediate, a client and a server certificate, writes what
// the servers need to dir, and returns what the client needs.
func newPKI(dir, format string) (*pki, error) {
	clientRoot := mtlstest.NewRootCA("Loadtest Client Root CA")
	issuing := clientRoot.NewIntermediate("Loadtest Issuing CA")
	leaf := issuing.NewClient("loadtest-client")
	serverCA := mtlstest.NewRootCA("Loadtest Server CA")
	server := serverCA.NewServer("127.0.0.1")
	files := map[string][]byte{
		fileClientRoot:    clientRoot.CertPEM(),
		fileClientIssuing: issuing.CertPEM(),
		fileServerCert:    server.CertPEM(),
		fileServerKey:     server.KeyPEM(),
		fileFormat:        []byte(format),
	}
	for name, data := range files {
		if err := os.WriteFile(filepath.Join(dir, name), data, 0o600); err != nil {
			return nil, err
		}
	}
	proxy := mtlstest.Proxy{Format: mtls.MustHeaderFormat(format), Addr: "127.0.0.1:1"}
	header := proxy.NewRequest(http.MethodGet, "/", leaf.Chain()...).Header
	return &pki{leaf: leaf, serverCA: serverCA, header: header, hostile: hostileCertificates(clientRoot, issuing),
		fresh: func() tls.Certificate { return issuing.NewClient("loadtest-client").TLSCertificate() }}, nil
}

// newClient returns the client of scenario s: HTTP/1.1, with or without keep-alive, and over TLS
// 1.3 presenting the client certificate, without session resumption; in a hostile scenario, a new
// certificate on each connection, a hostile one for the hostile client.
func (p *pki) newClient(s scenario, hostile bool) *http.Client {
	tr := &http.Transport{
		MaxIdleConns:        1024,
		MaxIdleConnsPerHost: 1024,
		DisableKeepAlives:   !s.keepAlive,
	}
	if s.tls {
		cfg := p.leaf.ClientTLSConfig(p.serverCA.Pool())
		cfg.MinVersion = tlsVersion
		cfg.MaxVersion = tlsVersion
		cfg.ClientSessionCache = nil
		if s.hostile != "" {
			mint := p.fresh
			if hostile {
				mint = p.hostile[s.hostile]
			}
			cfg.Certificates = nil
			cfg.GetClientCertificate = func(*tls.CertificateRequestInfo) (*tls.Certificate, error) {
				c := mint()
				return &c, nil
			}
		}
		tr.TLSClientConfig = cfg
	}
	return &http.Client{Transport: tr, Timeout: 30 * time.Second}
}

func report(out io.Writer, o options, results map[string][]result, ratios map[string][]ratio) {
	tw := tabwriter.NewWriter(out, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "scenario\tvariant\treq/s\tp50\tp99\tserver CPU/req\t")
	for _, s := range allScenarios {
		if !slices.Contains(o.scenarios, s.name) {
			continue
		}
		for _, v := range []string{s.bare, s.lib} {
			rs := results[s.name+"/"+v]
			fmt.Fprintf(tw, "%s\t%s\t%.0f\t%v\t%v\t%v\t\n", s.name, v,
				median(rs, func(r result) float64 { return r.rate() }),
				round(time.Duration(median(rs, func(r result) float64 { return float64(r.p50) }))),
				round(time.Duration(median(rs, func(r result) float64 { return float64(r.p99) }))),
				round(time.Duration(median(rs, func(r result) float64 { return float64(r.cpuPerRequest()) }))))
		}
	}
	tw.Flush()
	fmt.Fprintln(out, "\nmiddleware / bare (hostile-*: hostile / legit cold, per handshake), median of the per-round ratios:")
	tw = tabwriter.NewWriter(out, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "scenario\treq/s\tserver CPU/req\t")
	for _, s := range allScenarios {
		rs, ok := ratios[s.name]
		if !ok {
			continue
		}
		cpu := "n/a"
		if c := median(rs, func(r ratio) float64 { return r.cpu }); c > 0 {
			cpu = strconv.FormatFloat(c, 'f', 2, 64) + "x"
		}
		fmt.Fprintf(tw, "%s\t%.2fx\t%s\t\n", s.name, median(rs, func(r ratio) float64 { return r.rate }), cpu)
	}
	tw.Flush()
}

func median[T any](xs []T, f func(T) float64) float64 {
	v := make([]float64, len(xs))
	for i, x := range xs {
		v[i] = f(x)
	}
	slices.Sort(v)
	if len(v) == 0 {
		return 0
	}
	if len(v)%2 == 1 {
		return v[len(v)/2]
	}
	return (v[len(v)/2-1] + v[len(v)/2]) / 2
}

func round(d time.Duration) time.Duration {
	switch {
	case d >= time.Millisecond:
		return d.Round(10 * time.Microsecond)
	case d >= 10*time.Microsecond:
		return d.Round(100 * time.Nanosecond)
	}
	return d
}

// tlsVersion is the protocol both sides speak, so that bare and middleware compare alike.
const tlsVersion = tls.VersionTLS13
