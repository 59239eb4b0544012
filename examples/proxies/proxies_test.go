package proxies

import (
	"crypto/tls"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/certgate/mtls/examples/proxies/internal/demopki"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestFill(t *testing.T) {
	for _, tt := range []struct {
		name, text string
		vars       map[string]string
		want       string
		wantErr    string
	}{
		{name: "every placeholder", text: "listen @HOST@:@PORT@; # @HOST@", vars: map[string]string{"HOST": "127.0.0.1", "PORT": "8451"},
			want: "listen 127.0.0.1:8451; # 127.0.0.1"},
		{name: "extra values are ignored", text: "a @A@", vars: map[string]string{"A": "1", "B": "2"}, want: "a 1"},
		{name: "no placeholder", text: "user@example.test", want: "user@example.test"},
		{name: "placeholders left", text: "@B@ @A@ @B@ @C@", vars: map[string]string{"C": "3"},
			wantErr: "placeholders without a value: @A@, @B@"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			got, err := Fill(tt.text, tt.vars)
			if tt.wantErr != "" {
				require.EqualError(t, err, tt.wantErr)
				return
			}
			require.NoError(t, err)
			assert.Equal(t, tt.want, got)
		})
	}
}

func TestRenderDemo(t *testing.T) {
	demo := demopki.Write(t.TempDir())
	pki, server, clientsCA := demo.Dir, demo.Server, demo.ClientsCA
	out := filepath.Join(t.TempDir(), "out")
	nginx := Ports{Verify: 1001, Forward: 1002, Backend: 1003}
	demos, err := RenderDemo(pki, out, map[string]Ports{"nginx": nginx})
	require.NoError(t, err)
	require.Len(t, demos, len(List()))

	certs := filepath.Join(out, "certs")
	combined, err := tls.LoadX509KeyPair(filepath.Join(certs, "server-combined.pem"), filepath.Join(certs, "server-combined.pem"))
	require.NoError(t, err, "HAProxy's certificate and key in one file")
	assert.Equal(t, server.Certificate.Raw, combined.Certificate[0])
	for name, want := range map[string][]byte{"server.crt": server.CertPEM(), "server.key": server.KeyPEM(), "client-ca.crt": clientsCA.CertPEM()} {
		got, err := os.ReadFile(filepath.Join(certs, name))
		require.NoError(t, err)
		assert.Equal(t, want, got, name)
	}
	st, err := os.Stat(filepath.Join(certs, "server.key"))
	require.NoError(t, err)
	assert.Equal(t, os.FileMode(0o600), st.Mode().Perm())

	seen := map[int]string{8443: "examples/whoami", 8444: "examples/prometheus", 9464: "examples/prometheus"}
	for _, d := range demos {
		t.Run(d.Name, func(t *testing.T) {
			conf, err := os.ReadFile(d.Config)
			require.NoError(t, err)
			assert.Equal(t, filepath.Join(out, d.Name, d.ConfigName()), d.Config)
			assert.Contains(t, string(conf), certs+"/")
			if d.Name == "nginx" {
				assert.Equal(t, nginx, d.Ports)
			} else {
				assert.Equal(t, d.DefaultPorts, d.Ports)
				for _, port := range []int{d.Ports.Verify, d.Ports.Forward, d.Ports.Backend} {
					assert.Empty(t, seen[port], "port %d used twice", port)
					assert.Greater(t, port, 1023, "needs no privilege")
					seen[port] = d.Name
				}
			}
			assert.Contains(t, string(conf), ":"+itoa(d.Ports.Verify))
			assert.Contains(t, string(conf), "127.0.0.1:"+itoa(d.Ports.Backend))
			assert.Contains(t, d.Whoami(), "go run ./examples/whoami -client-ca "+filepath.Join(pki, "clients-ca.pem")+" -header "+d.Format+
				" -trusted-proxies 127.0.0.1 -listen 127.0.0.1:"+itoa(d.Ports.Backend))
			assert.True(t, strings.HasPrefix(d.Start(), d.Binary+" ") || d.Name == "caddy", d.Start())
			assert.Contains(t, d.Curl(d.Ports.Verify), "https://localhost:"+itoa(d.Ports.Verify)+"/")
		})
	}
}

func itoa(n int) string { return strconv.Itoa(n) }

func TestRenderDemoMissingPKI(t *testing.T) {
	pki := demopki.Write(t.TempDir()).Dir
	require.NoError(t, os.Remove(filepath.Join(pki, "server-key.pem")))
	_, err := RenderDemo(pki, t.TempDir(), nil)
	require.ErrorIs(t, err, fs.ErrNotExist)
	assert.ErrorContains(t, err, "server-key.pem")
	assert.ErrorContains(t, err, "sh examples/whoami/make-certs.sh")
}

func TestCommandLine(t *testing.T) {
	for _, tt := range []struct {
		name    string
		env     []string
		program string
		args    []string
		want    string
	}{
		{name: "plain words", program: "haproxy", args: []string{"-c", "-f", "/tmp/x/haproxy.cfg"}, want: "haproxy -c -f /tmp/x/haproxy.cfg"},
		{name: "space and semicolon", program: "nginx", args: []string{"-g", "daemon off;"}, want: "nginx -g 'daemon off;'"},
		{name: "quote", program: "echo", args: []string{"it's"}, want: `echo 'it'\''s'`},
		{name: "empty", program: "echo", args: []string{""}, want: "echo ''"},
		{name: "environment", env: []string{"HOME=/tmp/a b"}, program: "caddy", want: "HOME='/tmp/a b' caddy"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			assert.Equal(t, tt.want, commandLine(tt.env, tt.program, tt.args))
		})
	}
}
