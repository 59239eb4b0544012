package main

import (
	"bufio"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"net/netip"
	"os"
	"path/filepath"
	"runtime/pprof"
	"strings"
	"sync/atomic"
	"time"

	"github.com/certgate/mtls"
)

// dirEnv names the directory where the parent wrote the files below; profileEnv the file for the
// server's CPU profile while loaded (empty: none).
const (
	dirEnv     = "MTLS_LOADTEST_DIR"
	profileEnv = "MTLS_LOADTEST_PROFILE"
)

const (
	fileClientRoot    = "client-root.pem"
	fileClientIssuing = "client-issuing.pem"
	fileServerCert    = "server.pem"
	fileServerKey     = "server-key.pem"
	fileFormat        = "format"
)

// The server variants.
const (
	variantTLSBare       = "bare"       // Go's verified mutual TLS, a bare handler
	variantTLSMiddleware = "middleware" // Middleware.TLSConfig and Middleware.Handler
	// The same server as variantTLSMiddleware, loaded by a hostile client (see scenario.hostile).
	variantTLSMiddlewareHostile = "middleware-hostile"
	// Middleware.TLSConfig of a base that verifies (tls.RequireAndVerifyClientCert and the client
	// root as ClientCAs), legit and loaded by a hostile client.
	variantTLSMiddlewareVerify        = "middleware-verify"
	variantTLSMiddlewareVerifyHostile = "middleware-verify-hostile"
	variantHTTPBare                   = "bare-http" // plain HTTP, a bare handler
	variantHeaderMiddleware           = "middleware-header"
)

// serve runs a server variant on 127.0.0.1 with the files in dir, speaking with the parent on
// stdin and stdout: it writes "listening <addr>"; on "start" it reads its CPU time and writes
// "started"; on "stop" it writes "stopped <requests served since start> <CPU nanoseconds since
// start> <connections accepted since start>" and returns. It returns when stdin closes.
func serve(variant, dir, profile string, in io.Reader, out io.Writer) error {
	var served atomic.Int64
	ok := func(w http.ResponseWriter) {
		served.Add(1)
		_, _ = io.WriteString(w, "ok\n")
	}
	bare := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { ok(w) })
	authenticated := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if _, found := mtls.FromContext(r.Context()); !found {
			http.Error(w, "no identity", http.StatusInternalServerError)
			return
		}
		ok(w)
	})

	read := func(name string) ([]byte, error) { return os.ReadFile(filepath.Join(dir, name)) }
	srv := &http.Server{ReadHeaderTimeout: 10 * time.Second, ErrorLog: log.New(io.Discard, "", 0)}
	var tlsConfig *tls.Config
	switch variant {
	case variantTLSBare, variantTLSMiddleware, variantTLSMiddlewareHostile, variantTLSMiddlewareVerify, variantTLSMiddlewareVerifyHostile:
		cert, err := tls.LoadX509KeyPair(filepath.Join(dir, fileServerCert), filepath.Join(dir, fileServerKey))
		if err != nil {
			return err
		}
		base := &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tlsVersion, MaxVersion: tlsVersion}
		if variant != variantTLSMiddleware && variant != variantTLSMiddlewareHostile {
			rootPEM, err := read(fileClientRoot)
			if err != nil {
				return err
			}
			roots := x509.NewCertPool()
			if !roots.AppendCertsFromPEM(rootPEM) {
				return errors.New("no root CA in " + fileClientRoot)
			}
			base.ClientAuth = tls.RequireAndVerifyClientCert
			base.ClientCAs = roots
		}
		if variant == variantTLSBare {
			tlsConfig, srv.Handler = base, bare
			break
		}
		m, err := mtls.New(mtls.Config{RootCAFiles: []string{filepath.Join(dir, fileClientRoot)}})
		if err != nil {
			return err
		}
		defer m.Close()
		tlsConfig, srv.Handler = m.TLSConfig(base), m.Handler(authenticated)
	case variantHTTPBare:
		srv.Handler = bare
	case variantHeaderMiddleware:
		format, err := read(fileFormat)
		if err != nil {
			return err
		}
		f, err := mtls.HeaderFormat(strings.TrimSpace(string(format)))
		if err != nil {
			return err
		}
		m, err := mtls.New(mtls.Config{
			RootCAFiles:       []string{filepath.Join(dir, fileClientRoot)},
			IntermediateFiles: []string{filepath.Join(dir, fileClientIssuing)}, // for formats that forward the leaf alone
			Header: &mtls.HeaderConfig{
				Format:         f,
				TrustedProxies: []netip.Prefix{netip.MustParsePrefix("127.0.0.1/32")},
			},
		})
		if err != nil {
			return err
		}
		defer m.Close()
		srv.Handler = m.Handler(authenticated)
	default:
		return fmt.Errorf("unknown variant %q", variant)
	}

	tcp, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	var accepted atomic.Int64
	ln := net.Listener(&countingListener{Listener: tcp, accepted: &accepted})
	if tlsConfig != nil {
		ln = tls.NewListener(ln, tlsConfig)
	}
	go func() { _ = srv.Serve(ln) }()
	defer srv.Close()
	if _, err := fmt.Fprintln(out, "listening", ln.Addr()); err != nil {
		return err
	}

	lines := bufio.NewScanner(in)
	var startCPU time.Duration
	var startServed, startAccepted int64
	for lines.Scan() {
		switch lines.Text() {
		case "start":
			if profile != "" {
				f, err := os.Create(profile)
				if err != nil {
					return err
				}
				defer f.Close()
				if err := pprof.StartCPUProfile(f); err != nil {
					return err
				}
				defer pprof.StopCPUProfile() // before the file closes: defers run last in, first out
			}
			startCPU, startServed, startAccepted = cpuTime(), served.Load(), accepted.Load()
			if _, err := fmt.Fprintln(out, "started"); err != nil {
				return err
			}
		case "stop":
			cpu := cpuTime() - startCPU
			pprof.StopCPUProfile()
			_, err := fmt.Fprintln(out, "stopped", served.Load()-startServed, int64(cpu), accepted.Load()-startAccepted)
			return err
		default:
			return fmt.Errorf("unknown command %q", lines.Text())
		}
	}
	return lines.Err()
}

// countingListener counts the connections it accepts: a refused handshake serves no request.
type countingListener struct {
	net.Listener
	accepted *atomic.Int64
}

func (l *countingListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err == nil {
		l.accepted.Add(1)
	}
	return c, err
}
