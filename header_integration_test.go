package mtls

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/certgate/mtls/examples/proxies"
	"github.com/certgate/mtls/mtlstest"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// The integration tests start the real proxies (Debian packages nginx, haproxy, caddy, apache2)
// on 127.0.0.1 with the configurations of examples/proxies, in front of the middleware in header
// mode, and drive them with curl presenting client certificates.

// proxyKit is the PKI and files shared by one proxy run.
type proxyKit struct {
	certDir  string
	serverCA *mtlstest.CA
	root     *mtlstest.CA
	issuing  *mtlstest.CA
	alice    *mtlstest.Leaf
	rogue    *mtlstest.Leaf
}

func writeFile(t *testing.T, path string, data []byte, mode os.FileMode) {
	t.Helper()
	require.NoError(t, os.WriteFile(path, data, mode))
}

// newProxyKit mints the PKI and writes what the proxy and curl read.
func newProxyKit(t *testing.T, dir string) *proxyKit {
	k := &proxyKit{certDir: filepath.Join(dir, "certs")}
	require.NoError(t, os.MkdirAll(k.certDir, 0o755))
	k.serverCA = mtlstest.NewRootCA("Proxy Server CA")
	server := k.serverCA.NewServer("localhost", "127.0.0.1")
	k.root = mtlstest.NewRootCA("Clients Root CA")
	k.issuing = k.root.NewIntermediate("Clients Issuing CA")
	k.alice = k.issuing.NewClient("alice", mtlstest.WithURIs("spiffe://example.test/alice"))
	k.rogue = mtlstest.NewSelfSigned("alice") // same name, not issued by the clients' CA
	files := map[string][]byte{
		"server.crt":          server.CertPEM(),
		"server.key":          server.KeyPEM(),
		"server-combined.pem": append(server.CertPEM(), server.KeyPEM()...),
		"server-ca.crt":       k.serverCA.CertPEM(),
		"client-ca.crt":       append(k.issuing.CertPEM(), k.root.CertPEM()...),
		"alice.crt":           k.alice.ChainPEM(),
		"alice.key":           k.alice.KeyPEM(),
		"rogue.crt":           k.rogue.CertPEM(),
		"rogue.key":           k.rogue.KeyPEM(),
	}
	for name, data := range files {
		writeFile(t, filepath.Join(k.certDir, name), data, 0o644)
	}
	return k
}

// freePort returns a port that was free a moment ago on 127.0.0.1.
func freePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// renderTemplate fills the placeholders of a proxy configuration template, the way the render
// command of examples/proxies does.
func renderTemplate(t *testing.T, src, dst string, vars map[string]string) {
	t.Helper()
	b, err := os.ReadFile(src)
	require.NoError(t, err)
	out, err := proxies.Fill(string(b), vars)
	require.NoError(t, err, src)
	writeFile(t, dst, []byte(out), 0o644)
}

// startProcess starts a foreground server, waits (bounded) until every port accepts connections
// and stops it at the end of the test.
func startProcess(t *testing.T, cmd *exec.Cmd, logFile string, ports ...int) {
	t.Helper()
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	require.NoError(t, cmd.Start())
	exited := make(chan struct{})
	go func() { _ = cmd.Wait(); close(exited) }()
	t.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-exited:
		case <-time.After(5 * time.Second):
			_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) // its own process group
			<-exited
		}
	})
	logs := func() string {
		b, _ := os.ReadFile(logFile)
		return out.String() + string(b)
	}
	deadline := time.Now().Add(15 * time.Second)
	for _, port := range ports {
		for attempt := 0; ; attempt++ {
			select {
			case <-exited:
				t.Fatalf("%s exited early: %s", cmd.Path, logs())
			default:
			}
			c, err := net.DialTimeout("tcp", fmt.Sprintf("127.0.0.1:%d", port), time.Second)
			if err == nil {
				c.Close()
				break
			}
			if attempt >= 150 || time.Now().After(deadline) {
				t.Fatalf("%s does not listen on %d: %s", cmd.Path, port, logs())
			}
			time.Sleep(100 * time.Millisecond)
		}
	}
}

// curlResult is what curl got: the status and, for 200, the identity the service echoed.
type curlResult struct {
	status int
	body   map[string]any
}

func runCurl(t *testing.T, curl string, k *proxyKit, port int, cert string, headers ...string) curlResult {
	t.Helper()
	args := []string{"-sS", "--max-time", "10", "--cacert", filepath.Join(k.certDir, "server-ca.crt"),
		"--resolve", fmt.Sprintf("localhost:%d:127.0.0.1", port), "-w", "\n%{http_code}"}
	if cert != "" {
		args = append(args, "--cert", filepath.Join(k.certDir, cert+".crt"), "--key", filepath.Join(k.certDir, cert+".key"))
	}
	for _, h := range headers {
		args = append(args, "-H", h)
	}
	args = append(args, fmt.Sprintf("https://localhost:%d/", port))
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, curl, args...).CombinedOutput()
	require.NoError(t, err, "curl: %s", out)
	s := strings.TrimSpace(string(out))
	i := strings.LastIndexByte(s, '\n')
	require.Positive(t, i, "curl output: %s", s)
	status, err := strconv.Atoi(s[i+1:])
	require.NoError(t, err, "curl output: %s", s)
	res := curlResult{status: status, body: map[string]any{}}
	_ = json.Unmarshal([]byte(s[:i]), &res.body)
	return res
}

// identityEcho answers with the identity (or the problem the middleware wrote).
var identityEcho = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
	id, ok := FromContext(r.Context())
	if !ok {
		_ = json.NewEncoder(w).Encode(map[string]string{"cn": ""})
		return
	}
	_ = json.NewEncoder(w).Encode(map[string]string{
		"cn": id.Leaf.Subject.CommonName, "sha256": id.SHA256, "source": string(id.Source),
		"format": id.Format, "proxy": id.Proxy.String(),
	})
})

// proxyCase describes how to run one proxy.
type proxyCase struct {
	name      string // examples/proxies/<name>
	binary    string
	template  string // file name in examples/proxies/<name>, rendered without ".template"
	format    string
	hasChain  bool // the proxy forwards the client's intermediates
	command   func(bin, runDir, conf string) *exec.Cmd
	inject    func(k *proxyKit) []string // client-sent headers that would authenticate alice if believed
	extraVars map[string]string
}

// startProxy mints a PKI, starts the service (header mode for pc's format, trusting only
// 127.0.0.1; adjust may change its configuration) and the proxy with the configuration template,
// and returns the PKI, the service's middleware and the proxy's two ports.
func startProxy(t *testing.T, pc proxyCase, template string, adjust func(*Config)) (k *proxyKit, m *Middleware, verifyPort, forwardPort int) {
	t.Helper()
	bin := requireBinary(t, pc.binary)
	dir := t.TempDir()
	// The proxies' worker processes may run as another user: let them reach the files.
	require.NoError(t, os.Chmod(dir, 0o755))
	require.NoError(t, os.Chmod(filepath.Dir(dir), 0o755))
	k = newProxyKit(t, dir)
	runDir := filepath.Join(dir, "run")
	require.NoError(t, os.MkdirAll(runDir, 0o755))

	// The service: header mode, trusting only the proxy's address. A proxy that cannot forward
	// the client's intermediates needs them configured here.
	cfg := Config{RootCAs: k.root.Pool(), Optional: false, Header: &HeaderConfig{
		Format:         MustHeaderFormat(pc.format),
		TrustedProxies: []netip.Prefix{netip.MustParsePrefix("127.0.0.1/32")},
	}}
	if !pc.hasChain {
		cfg.Intermediates = k.issuing.Pool()
	}
	if adjust != nil {
		adjust(&cfg)
	}
	m, err := New(cfg)
	require.NoError(t, err)
	backend := httptest.NewServer(m.Handler(identityEcho))
	t.Cleanup(backend.Close)

	verifyPort, forwardPort = freePort(t), freePort(t)
	vars := map[string]string{
		"RUN_DIR": runDir, "CERT_DIR": k.certDir, "LISTEN_HOST": "127.0.0.1",
		"VERIFY_PORT": strconv.Itoa(verifyPort), "FORWARD_PORT": strconv.Itoa(forwardPort),
		"BACKEND": strings.TrimPrefix(backend.URL, "http://"),
	}
	for k, v := range pc.extraVars {
		vars[k] = v
	}
	conf := filepath.Join(runDir, strings.TrimSuffix(filepath.Base(template), ".template"))
	renderTemplate(t, template, conf, vars)
	startProcess(t, pc.command(bin, runDir, conf), filepath.Join(runDir, "error.log"), verifyPort, forwardPort)
	return k, m, verifyPort, forwardPort
}

// integrationProxies are the proxies of examples/proxies, as the integration tests run them: as
// that package says (the commands the render command prints), with the headers a client would
// inject to impersonate alice.
func integrationProxies() []proxyCase {
	inject := map[string]func(k *proxyKit) []string{
		"nginx": func(k *proxyKit) []string {
			return []string{"X-SSL-Client-Cert: " + nginxEscape(string(k.alice.CertPEM()))}
		},
		"haproxy": func(k *proxyKit) []string {
			return []string{"X-SSL-Client-Cert: " + b64(k.alice.Certificate), "X-SSL-Client-Chain: " + b64(k.issuing.Certificate)}
		},
		"caddy": func(k *proxyKit) []string { return []string{"X-SSL-Client-Cert: " + b64(k.alice.Certificate)} },
		"apache": func(k *proxyKit) []string {
			return []string{"X-SSL-Client-Cert: " + flatPEM(k.alice.Certificate), "X-SSL-Client-Chain-0: " + flatPEM(k.issuing.Certificate)}
		},
	}
	var cases []proxyCase
	for _, p := range proxies.List() {
		cases = append(cases, proxyCase{
			name: p.Name, binary: p.Binary, template: p.Template, format: p.Format, hasChain: p.Chain,
			command: func(bin, runDir, conf string) *exec.Cmd {
				cmd := exec.Command(bin, p.Args(runDir, conf)...)
				if env := p.Env(runDir); env != nil {
					cmd.Env = append(os.Environ(), env...)
				}
				return cmd
			},
			inject: inject[p.Name], extraVars: p.Vars,
		})
	}
	return cases
}

func TestHeaderIntegrationProxies(t *testing.T) {
	for _, pc := range integrationProxies() {
		t.Run(pc.name, func(t *testing.T) {
			curl := requireBinary(t, "curl")
			k, m, verifyPort, forwardPort := startProxy(t, pc, filepath.Join("examples", "proxies", pc.name, pc.template), nil)
			aliceSum := k.alice.SHA256()
			for _, port := range []struct {
				name string
				port int
			}{{"verifying listener", verifyPort}, {"forwarding listener", forwardPort}} {
				t.Run(port.name+": trusted client accepted from the header", func(t *testing.T) {
					res := runCurl(t, curl, k, port.port, "alice")
					require.Equal(t, http.StatusOK, res.status, res.body)
					assert.Equal(t, "alice", res.body["cn"])
					assert.Equal(t, aliceSum, res.body["sha256"])
					assert.Equal(t, "header", res.body["source"])
					assert.Equal(t, pc.format, res.body["format"])
					assert.Equal(t, "127.0.0.1", res.body["proxy"])
				})
				t.Run(port.name+": the proxy replaces a client-injected header", func(t *testing.T) {
					res := runCurl(t, curl, k, port.port, "alice", "X-SSL-Client-Cert: "+b64(k.rogue.Certificate))
					require.Equal(t, http.StatusOK, res.status, res.body)
					assert.Equal(t, aliceSum, res.body["sha256"])
				})
			}
			t.Run("untrusted client forwarded by the proxy is refused by the service", func(t *testing.T) {
				res := runCurl(t, curl, k, forwardPort, "rogue")
				assert.Equal(t, http.StatusUnauthorized, res.status)
				assert.Equal(t, ReasonCertificateUntrusted, res.body["reason"])
			})
			t.Run("client without certificate injecting a valid one is refused", func(t *testing.T) {
				res := runCurl(t, curl, k, forwardPort, "", pc.inject(k)...)
				assert.Equal(t, http.StatusUnauthorized, res.status)
				assert.Equal(t, ReasonCertificateRequired, res.body["reason"])
			})
			t.Run("the same header sent to the service directly from an untrusted address is ignored", func(t *testing.T) {
				// The service trusts 127.0.0.1 only: a request from anywhere else with the
				// header is judged by its TLS connection alone (none here).
				r := httptest.NewRequest(http.MethodGet, "/", nil)
				r.RemoteAddr = "192.0.2.10:1234"
				for _, h := range pc.inject(k) {
					name, value, _ := strings.Cut(h, ": ")
					r.Header.Set(name, value)
				}
				_, err := m.Authenticate(r)
				require.ErrorIs(t, err, ErrNoCertificate)
			})
		})
	}
}
