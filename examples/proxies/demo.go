package proxies

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
)

// The demo PKI's files, as examples/whoami/make-certs.sh names them.
const (
	demoClientsCA  = "clients-ca.pem" // issues the client certificates
	demoServerCA   = "server-ca.pem"  // issues the server certificate
	demoServer     = "server.pem"     // for 127.0.0.1 and localhost
	demoServerKey  = "server-key.pem"
	demoClient     = "client.pem" // alice, issued by clients-ca.pem
	demoClientKey  = "client-key.pem"
	demoListenHost = "127.0.0.1"
)

// Demo is one proxy that [RenderDemo] rendered, with the commands to run it.
type Demo struct {
	Proxy
	Ports  Ports  // where it listens, and where the service behind it does
	RunDir string // the @RUN_DIR@ of its configuration: pid file, logs, temporary files
	Config string // its rendered configuration
	pkiDir string // absolute
}

// RenderDemo renders the configuration of every proxy of [List] for the demo PKI that
// examples/whoami/make-certs.sh made in pkiDir, into outDir (made if missing; files of an
// earlier rendering are replaced). outDir/certs gets the file names the templates read
// (server.crt, server.key, server-combined.pem for HAProxy, client-ca.crt), made from the
// PKI's; outDir/NAME is each proxy's run directory, with its configuration. Each proxy listens
// on 127.0.0.1 at ports[its name], or its [Proxy.DefaultPorts] when ports has none.
func RenderDemo(pkiDir, outDir string, ports map[string]Ports) ([]Demo, error) {
	pki, err := filepath.Abs(pkiDir)
	if err != nil {
		return nil, err
	}
	out, err := filepath.Abs(outDir)
	if err != nil {
		return nil, err
	}
	read := func(name string) ([]byte, error) {
		b, err := os.ReadFile(filepath.Join(pki, name))
		if errors.Is(err, fs.ErrNotExist) {
			return nil, fmt.Errorf("%w (make the demo PKI with: sh examples/whoami/make-certs.sh)", err)
		}
		return b, err
	}
	for _, name := range []string{demoServerCA, demoClient, demoClientKey} {
		if _, err := read(name); err != nil { // read by whoami and curl, not here
			return nil, err
		}
	}
	cert, err := read(demoServer)
	if err != nil {
		return nil, err
	}
	key, err := read(demoServerKey)
	if err != nil {
		return nil, err
	}
	clientsCA, err := read(demoClientsCA)
	if err != nil {
		return nil, err
	}
	certDir := filepath.Join(out, "certs")
	if err := os.MkdirAll(certDir, 0o755); err != nil {
		return nil, err
	}
	files := []struct {
		name string
		data []byte
		mode os.FileMode
	}{
		{"server.crt", cert, 0o644},
		{"server.key", key, 0o600},
		{"server-combined.pem", append(withNewline(cert), key...), 0o600},
		{"client-ca.crt", clientsCA, 0o644},
	}
	for _, f := range files {
		if err := writeFile(filepath.Join(certDir, f.name), f.data, f.mode); err != nil {
			return nil, err
		}
	}

	var demos []Demo
	for _, p := range List() {
		d := Demo{Proxy: p, Ports: p.DefaultPorts, RunDir: filepath.Join(out, p.Name), pkiDir: pki}
		if pp, ok := ports[p.Name]; ok {
			d.Ports = pp
		}
		d.Config = filepath.Join(d.RunDir, p.ConfigName())
		// 0755: the proxies' worker processes may run as another user than the one starting them.
		if err := os.MkdirAll(d.RunDir, 0o755); err != nil {
			return nil, err
		}
		text, err := p.Render(map[string]string{
			"RUN_DIR": d.RunDir, "CERT_DIR": certDir, "LISTEN_HOST": demoListenHost,
			"VERIFY_PORT": strconv.Itoa(d.Ports.Verify), "FORWARD_PORT": strconv.Itoa(d.Ports.Forward),
			"BACKEND": demoListenHost + ":" + strconv.Itoa(d.Ports.Backend),
		})
		if err != nil {
			return nil, fmt.Errorf("%s: %w", p.Name, err)
		}
		if err := writeFile(d.Config, []byte(text), 0o644); err != nil {
			return nil, err
		}
		demos = append(demos, d)
	}
	return demos, nil
}

// Start is the shell command line that starts the proxy in the foreground.
func (d Demo) Start() string {
	return commandLine(d.Env(d.RunDir), d.Binary, d.Args(d.RunDir, d.Config))
}

// Check is the shell command line of the proxy's own syntax check of its configuration.
func (d Demo) Check() string {
	return commandLine(d.Env(d.RunDir), d.Binary, d.CheckArgs(d.RunDir, d.Config))
}

// Whoami is the shell command line, to run at the repository's root, that starts
// examples/whoami behind the proxy: header mode in the proxy's format, trusting the demo's
// clients CA, believing the header from 127.0.0.1 only.
func (d Demo) Whoami() string {
	return commandLine(nil, "go", []string{"run", "./examples/whoami",
		"-client-ca", filepath.Join(d.pkiDir, demoClientsCA), "-header", d.Format,
		"-trusted-proxies", demoListenHost, "-listen", demoListenHost + ":" + strconv.Itoa(d.Ports.Backend)})
}

// Curl is the curl command line that calls the service through the proxy's listener on port
// (its verifying or its forwarding one) with the demo's client certificate, alice.
func (d Demo) Curl(port int) string {
	p := strconv.Itoa(port)
	return commandLine(nil, "curl", []string{"--cacert", filepath.Join(d.pkiDir, demoServerCA),
		"--cert", filepath.Join(d.pkiDir, demoClient), "--key", filepath.Join(d.pkiDir, demoClientKey),
		"--resolve", "localhost:" + p + ":" + demoListenHost, "https://localhost:" + p + "/"})
}

// writeFile writes data to name with mode, also when name exists with another mode.
func writeFile(name string, data []byte, mode os.FileMode) error {
	if err := os.WriteFile(name, data, mode); err != nil {
		return err
	}
	return os.Chmod(name, mode)
}

// withNewline returns b ending with a line break.
func withNewline(b []byte) []byte {
	if len(b) > 0 && b[len(b)-1] != '\n' {
		return append(b[:len(b):len(b)], '\n')
	}
	return b
}

// commandLine joins an environment, a program and its arguments into a line for sh, quoting
// each word that needs it.
func commandLine(env []string, program string, args []string) string {
	words := make([]string, 0, len(env)+1+len(args))
	for _, e := range env {
		name, value, _ := strings.Cut(e, "=")
		words = append(words, name+"="+shellQuote(value))
	}
	words = append(words, shellQuote(program))
	for _, a := range args {
		words = append(words, shellQuote(a))
	}
	return strings.Join(words, " ")
}

var shellSafe = regexp.MustCompile(`^[A-Za-z0-9_@%+=:,./-]+$`)

// shellQuote returns s as one word for sh.
func shellQuote(s string) string {
	if shellSafe.MatchString(s) {
		return s
	}
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}
