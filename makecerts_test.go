package mtls

import (
	"bytes"
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/certgate/mtls/internal/mddoc"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestMakeCertsScript runs the openssl recipe of docs/getting-started.md, examples/whoami/make-certs.sh, with sh and
// checks that what it makes works over real TLS connections driven by curl: alice's certificate
// under the clients CA, the partner's by the fingerprint line openssl printed, and the server's
// certificate refused as a client certificate.
func TestMakeCertsScript(t *testing.T) {
	sh := requireBinary(t, "sh")
	requireBinary(t, "openssl")
	curl := requireBinary(t, "curl")

	const scriptPath = "examples/whoami/make-certs.sh"
	script, err := os.ReadFile(scriptPath)
	require.NoError(t, err)
	readme, err := os.ReadFile("docs/getting-started.md")
	require.NoError(t, err)
	recipe := readmeBlock(t, readme, "recipe:make-certs")
	require.Contains(t, recipe, "openssl req")
	assert.Contains(t, string(script), recipe, "the recipe in docs/getting-started.md and %s differ", scriptPath)

	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	demo := makeDemoPKI(t, sh)
	file := func(name string) string { return filepath.Join(demo, name) }
	pin, err := os.ReadFile(file("partner.sha256"))
	require.NoError(t, err)
	require.True(t, bytes.HasPrefix(pin, []byte("sha256 Fingerprint=")) || bytes.HasPrefix(pin, []byte("SHA256 Fingerprint=")), "%s", pin)

	m, err := New(Config{RootCAFiles: []string{file("clients-ca.pem")}, PinnedSHA256: []string{string(pin)}})
	require.NoError(t, err)
	serverCert, err := tls.LoadX509KeyPair(file("server.pem"), file("server-key.pem"))
	require.NoError(t, err)
	srv := httptest.NewUnstartedServer(m.Handler(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		id, _ := FromContext(r.Context())
		fmt.Fprint(w, id.Leaf.Subject.CommonName)
	})))
	srv.TLS = m.TLSConfig(&tls.Config{Certificates: []tls.Certificate{serverCert}})
	srv.Config.ErrorLog = log.New(io.Discard, "", 0)
	srv.StartTLS()
	t.Cleanup(srv.Close)

	for _, tt := range []struct{ cert, want string }{
		{"client", "alice\n200"},
		{"partner", "partner\n200"},
		{"server", `"reason":"certificate_wrong_usage"}` + "\n\n401"},
	} {
		t.Run(tt.cert, func(t *testing.T) {
			out, err := exec.CommandContext(ctx, curl, "--silent", "--show-error", "--max-time", "10",
				"--cacert", file("server-ca.pem"), "--cert", file(tt.cert+".pem"), "--key", file(tt.cert+"-key.pem"),
				"--write-out", `\n%{http_code}`, srv.URL+"/").CombinedOutput()
			require.NoError(t, err, "curl: %s", out)
			assert.True(t, strings.HasSuffix(string(out), tt.want), "curl: %s", out)
		})
	}
}

// makeDemoPKI runs examples/whoami/make-certs.sh with sh in a temporary directory and returns
// the directory of the demo PKI it made.
func makeDemoPKI(t *testing.T, sh string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	parent := t.TempDir()
	out, err := exec.CommandContext(ctx, sh, filepath.Join("examples", "whoami", "make-certs.sh"), parent).CombinedOutput()
	require.NoError(t, err, "%s", out)
	return filepath.Join(parent, "mtls-demo")
}

// readmeBlock returns the body of the code block right after the line "<!-- marker -->" of a
// Markdown text.
func readmeBlock(t *testing.T, md []byte, marker string) string {
	t.Helper()
	b, ok := mddoc.Parse(md).Marked(marker)
	require.True(t, ok, "no code block right after <!-- %s -->", marker)
	require.True(t, b.Closed, "unterminated code block after <!-- %s -->", marker)
	return b.Text
}
