package mtls

import (
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/certgate/mtls/examples/proxies"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestProxiesRenderDemo renders every proxy of examples/proxies for the demo PKI that
// examples/whoami/make-certs.sh makes, as the render command does, and runs the command line it
// prints for each proxy's own syntax check. Then it follows the printed lines for nginx: the
// proxy, examples/whoami behind it, and curl through both listeners.
func TestProxiesRenderDemo(t *testing.T) {
	sh := requireBinary(t, "sh")
	requireBinary(t, "openssl")
	pki := makeDemoPKI(t, sh)
	out := t.TempDir()
	// The proxies' worker processes may run as another user: let them reach the files.
	require.NoError(t, os.Chmod(out, 0o755))
	require.NoError(t, os.Chmod(filepath.Dir(out), 0o755))
	ports := map[string]proxies.Ports{}
	for _, p := range proxies.List() {
		ports[p.Name] = proxies.Ports{Verify: freePort(t), Forward: freePort(t), Backend: freePort(t)}
	}
	demos, err := proxies.RenderDemo(pki, out, ports)
	require.NoError(t, err)
	require.Len(t, demos, len(proxies.List()))
	for _, name := range []string{"server.crt", "server.key", "server-combined.pem", "client-ca.crt"} {
		assert.FileExists(t, filepath.Join(out, "certs", name))
	}

	for _, d := range demos {
		t.Run(d.Name+" syntax check", func(t *testing.T) {
			requireBinary(t, d.Binary)
			require.Equal(t, ports[d.Name], d.Ports)
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			res, err := exec.CommandContext(ctx, sh, "-c", d.Check()).CombinedOutput()
			require.NoError(t, err, "%s\n%s", d.Check(), res)
			assert.NotContains(t, strings.ToLower(string(res)), "[warn", "%s", res)
		})
	}

	t.Run("nginx in front of whoami", func(t *testing.T) {
		requireBinary(t, "curl") // the printed line names it
		goBin := requireBinary(t, "go")
		d := demos[0]
		require.Equal(t, "nginx", d.Name)
		requireBinary(t, d.Binary)
		require.Empty(t, d.Env(d.RunDir), "the line is run with exec")

		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		defer cancel()
		whoami := filepath.Join(t.TempDir(), "whoami")
		res, err := exec.CommandContext(ctx, goBin, "build", "-o", whoami, "./examples/whoami").CombinedOutput()
		require.NoError(t, err, "%s", res)
		const goRun = "go run ./examples/whoami "
		require.True(t, strings.HasPrefix(d.Whoami(), goRun), d.Whoami())
		whoamiLog := filepath.Join(d.RunDir, "whoami.log")
		startProcess(t, exec.Command(sh, "-c", "exec "+whoami+" "+strings.TrimPrefix(d.Whoami(), goRun)), whoamiLog, d.Ports.Backend)
		startProcess(t, exec.Command(sh, "-c", "exec "+d.Start()), filepath.Join(d.RunDir, "error.log"), d.Ports.Verify, d.Ports.Forward)

		for _, port := range []int{d.Ports.Verify, d.Ports.Forward} {
			res, err := exec.CommandContext(ctx, sh, "-c", d.Curl(port)+" --silent --show-error --max-time 10").CombinedOutput()
			require.NoError(t, err, "%s\n%s", d.Curl(port), res)
			var id whoamiAnswer
			require.NoError(t, json.Unmarshal(res, &id), "%s", res)
			assert.Equal(t, whoamiAnswer{true, "header", "nginx", "127.0.0.1", "CN=alice"}, id, "port %d", port)
		}
	})
}

// whoamiAnswer is the part of examples/whoami's answer that says who came in, and how.
type whoamiAnswer struct {
	Authenticated  bool
	Source, Format string
	Proxy, Subject string
}
