package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/certgate/mtls/examples/proxies/internal/demopki"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestRun(t *testing.T) {
	pki := demopki.Write(t.TempDir()).Dir
	for _, tt := range []struct {
		name       string
		args       []string
		code       int
		wantStdout []string
		wantStderr string
	}{
		{name: "into a directory", args: []string{"-pki", pki, "-out", "OUT"}, wantStdout: []string{
			"rendered into OUT\n",
			"\nnginx (format nginx): verifying listener 8451, forwarding listener 8452, whoami on 8081\n" +
				"  check:  nginx -t -p OUT/nginx/ -c OUT/nginx/nginx.conf\n" +
				"  proxy:  nginx -p OUT/nginx/ -c OUT/nginx/nginx.conf -g 'daemon off;'\n" +
				"  whoami: go run ./examples/whoami -client-ca " + pki + "/clients-ca.pem -header nginx -trusted-proxies 127.0.0.1 -listen 127.0.0.1:8081\n" +
				"  curl:   curl --cacert " + pki + "/server-ca.pem --cert " + pki + "/client.pem --key " + pki + "/client-key.pem --resolve localhost:8451:127.0.0.1 https://localhost:8451/\n",
			"\nhaproxy (format haproxy): verifying listener 8453, forwarding listener 8454, whoami on 8082\n",
			"\ncaddy (format caddy): verifying listener 8455, forwarding listener 8456, whoami on 8083\n" +
				"  check:  HOME=OUT/caddy/home XDG_DATA_HOME=OUT/caddy/home XDG_CONFIG_HOME=OUT/caddy/home caddy validate --config OUT/caddy/Caddyfile --adapter caddyfile\n",
			"\napache (format apache): verifying listener 8457, forwarding listener 8458, whoami on 8084\n" +
				"  check:  apache2 -t -d OUT/apache -f OUT/apache/httpd.conf\n" +
				"  proxy:  apache2 -d OUT/apache -f OUT/apache/httpd.conf -DFOREGROUND\n",
		}},
		{name: "missing PKI", args: []string{"-pki", filepath.Join(pki, "nowhere"), "-out", "OUT"}, code: 1,
			wantStderr: "render: open " + filepath.Join(pki, "nowhere", "server-ca.pem") + ": no such file or directory (make the demo PKI with: sh examples/whoami/make-certs.sh)\n"},
		{name: "unknown flag", args: []string{"-port", "1"}, code: 2, wantStderr: "flag provided but not defined: -port"},
		{name: "arguments", args: []string{"x"}, code: 2, wantStderr: "render: unexpected arguments: [\"x\"]\n"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			out := filepath.Join(t.TempDir(), "out")
			args := make([]string, len(tt.args))
			for i, a := range tt.args {
				args[i] = strings.ReplaceAll(a, "OUT", out)
			}
			var stdout, stderr bytes.Buffer
			require.Equal(t, tt.code, run(args, &stdout, &stderr), "stderr: %s", &stderr)
			for _, want := range tt.wantStdout {
				assert.Contains(t, stdout.String(), strings.ReplaceAll(want, "OUT", out))
			}
			if tt.wantStderr != "" {
				assert.Contains(t, stderr.String(), tt.wantStderr)
			}
			if tt.code == 0 {
				assert.FileExists(t, filepath.Join(out, "haproxy", "haproxy.cfg"))
			}
		})
	}
}

// TestRunDefaultOut renders into a new temporary directory, which it names first.
func TestRunDefaultOut(t *testing.T) {
	tmp := t.TempDir()
	t.Setenv("TMPDIR", tmp)
	var stdout, stderr bytes.Buffer
	require.Equal(t, 0, run([]string{"-pki", demopki.Write(t.TempDir()).Dir}, &stdout, &stderr), "stderr: %s", &stderr)
	first, _, _ := strings.Cut(stdout.String(), "\n")
	dir, ok := strings.CutPrefix(first, "rendered into ")
	require.True(t, ok, first)
	assert.Equal(t, tmp, filepath.Dir(dir))
	assert.FileExists(t, filepath.Join(dir, "nginx", "nginx.conf"))
	st, err := os.Stat(dir)
	require.NoError(t, err)
	assert.Equal(t, os.FileMode(0o755), st.Mode().Perm(), "the proxies' workers reach their files")
}
