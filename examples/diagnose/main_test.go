package main

import (
	"bytes"
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"fmt"
	"math/big"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/certgate/mtls"
	"github.com/certgate/mtls/mtlstest"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// fixture is a client PKI on disk: a root, an issuing CA, and files written on demand.
type fixture struct {
	dir             string
	root, issuing   *mtlstest.CA
	rootFile, inter string
}

func newFixture(t *testing.T) *fixture {
	t.Helper()
	f := &fixture{dir: t.TempDir(), root: mtlstest.NewRootCA("Root CA")}
	f.issuing = f.root.NewIntermediate("Issuing CA")
	f.rootFile = f.write("root.pem", f.root.CertPEM())
	f.inter = f.write("issuing.pem", f.issuing.CertPEM())
	return f
}

func (f *fixture) write(name string, data []byte) string {
	return mtlstest.WriteFile(f.dir, name, data)
}

// opensslPin is the line openssl x509 -noout -fingerprint -sha256 prints for c.
func opensslPin(c *x509.Certificate) string {
	sum := sha256.Sum256(c.Raw)
	hex := make([]string, len(sum))
	for i, b := range sum {
		hex[i] = fmt.Sprintf("%02X", b)
	}
	return "sha256 Fingerprint=" + strings.Join(hex, ":")
}

// verdicts returns the text report's step lines (those before the outcome), each trimmed to its
// name and verdict.
func verdicts(t *testing.T, out string) []string {
	t.Helper()
	var got []string
	for _, l := range strings.Split(out, "\n") {
		if strings.HasPrefix(l, "accepted at ") || strings.HasPrefix(l, "refused at ") {
			break
		}
		for _, s := range steps {
			if strings.HasPrefix(l, s+" ") {
				v := strings.TrimSpace(l[12:])
				switch {
				case strings.HasPrefix(v, "not reached"):
					v = "not reached"
				case strings.Contains(v, " "):
					v = v[:strings.Index(v, " ")]
				}
				got = append(got, s+" "+v)
			}
		}
	}
	return got
}

func TestDiagnose(t *testing.T) {
	f := newFixture(t)
	alice := f.issuing.NewClient("alice", mtlstest.WithURIs("spiffe://example.test/alice"),
		mtlstest.WithSubject(pkix.Name{CommonName: "alice", OrganizationalUnit: []string{"payments"}}))
	aliceChain := f.write("alice-chain.pem", alice.ChainPEM())
	aliceLeaf := f.write("alice.pem", alice.CertPEM())
	server := f.write("server.pem", f.issuing.NewServer("api.example.test").ChainPEM())
	noEKU := f.write("legacy.pem", f.issuing.NewClient("legacy", mtlstest.WithExtKeyUsage()).ChainPEM())
	partner := mtlstest.NewSelfSigned("partner")
	partnerFile := f.write("partner.pem", partner.CertPEM())
	bob := f.write("bob.pem", f.issuing.NewClient("bob").ChainPEM())
	policy := f.write("policy.json", []byte(`{"subject": {"ou": ["payments"]}}`))
	revoked := f.issuing.NewClient("mallory")
	crl := f.write("issuing.crl", mtlstest.CRLPEM(f.issuing.NewCRL(mtlstest.CRL{
		ThisUpdate: revoked.Certificate.NotBefore, NextUpdate: revoked.Certificate.NotAfter,
		Revoked: []*big.Int{revoked.Certificate.SerialNumber}})))
	revokedFile := f.write("mallory.pem", revoked.ChainPEM())
	bindings := f.write("bindings.json", []byte(`{"payments-svc": ["`+alice.SHA256()+`"]}`))
	at := func(t time.Time) string { return t.UTC().Format(time.RFC3339) }
	expiry := alice.Certificate.NotAfter

	allOK := []string{"claim ok", "screen ok", "verify ok", "revocation off", "principal off", "policy off"}
	tests := []struct {
		name     string
		args     []string
		code     int
		verdicts []string
		contains []string
	}{
		{
			name: "accepted chain", args: []string{"-client-ca", f.rootFile, aliceChain}, code: 0, verdicts: allOK,
			contains: []string{
				`claim       ok      2 certificates presented (leaf "CN=alice,OU=payments", then "CN=Issuing CA")`,
				`verify      ok      chain "CN=alice,OU=payments" <- "CN=Issuing CA" <- "CN=Root CA"`,
				"accepted at ", "subject     CN=alice,OU=payments\n", "issuer      CN=Issuing CA\n",
				"sha256      " + alice.SHA256() + "\n", "spiffe_id   spiffe://example.test/alice\n",
				"not_after   " + at(expiry) + "\n", "revocation  not checked\n",
			},
		},
		{
			name: "flags after the file", args: []string{aliceChain, "-client-ca", f.rootFile}, code: 0, verdicts: allOK,
		},
		{
			name: "leaf alone", args: []string{"-client-ca", f.rootFile, aliceLeaf}, code: 1,
			verdicts: []string{"claim ok", "screen ok", "verify REFUSED", "revocation not reached", "principal not reached", "policy not reached"},
			contains: []string{
				`1 certificate presented (leaf "CN=alice,OU=payments", alone)`,
				"verify      REFUSED certificate_untrusted: the client sent its certificate alone", "IntermediateFiles",
				"refused at ", ": 401 certificate_untrusted\n",
			},
		},
		{
			name: "leaf alone with intermediates", args: []string{"-client-ca", f.rootFile, "-intermediates", f.inter, aliceLeaf},
			code: 0, verdicts: allOK,
		},
		{
			name: "expired", args: []string{"-client-ca", f.rootFile, "-at", at(expiry.Add(time.Hour)), aliceChain}, code: 1,
			verdicts: []string{"claim ok", "screen ok", "verify REFUSED", "revocation not reached", "principal not reached", "policy not reached"},
			contains: []string{"verify      REFUSED certificate_expired: ", "refused at " + at(expiry.Add(time.Hour))},
		},
		{
			name: "expires soon", args: []string{"-client-ca", f.rootFile, "-at", at(expiry.Add(-24 * time.Hour)), aliceChain}, code: 0,
			verdicts: allOK, contains: []string{"not_after   " + at(expiry) + " (expires soon)\n"},
		},
		{
			name: "wrong usage", args: []string{"-client-ca", f.rootFile, server}, code: 1,
			verdicts: []string{"claim ok", "screen ok", "verify REFUSED", "revocation not reached", "principal not reached", "policy not reached"},
			contains: []string{"verify      REFUSED certificate_wrong_usage: "},
		},
		{
			name: "no extended key usage", args: []string{"-client-ca", f.rootFile, noEKU}, code: 1,
			verdicts: []string{"claim ok", "screen ok", "verify REFUSED", "revocation not reached", "principal not reached", "policy not reached"},
			contains: []string{"verify      REFUSED certificate_wrong_usage: ", "has no extended key usage extension", "Config.DangerouslyAllowNoExtKeyUsage"},
		},
		{
			name: "pinned self-signed", args: []string{"-pin", opensslPin(partner.Certificate), partnerFile}, code: 0, verdicts: allOK,
			contains: []string{"verify      ok      pinned", "pinned      yes\n", "chain       CN=partner\n"},
		},
		{
			name: "self-signed not pinned", args: []string{"-client-ca", f.rootFile, partnerFile}, code: 1,
			contains: []string{"verify      REFUSED certificate_untrusted: "},
		},
		{
			name: "policy allows", args: []string{"-client-ca", f.rootFile, "-policy", policy, aliceChain}, code: 0,
			verdicts: []string{"claim ok", "screen ok", "verify ok", "revocation off", "principal off", "policy ok"},
		},
		{
			name: "policy refuses", args: []string{"-client-ca", f.rootFile, "-policy", policy, bob}, code: 1,
			verdicts: []string{"claim ok", "screen ok", "verify ok", "revocation off", "principal off", "policy REFUSED"},
			contains: []string{"policy      REFUSED policy_denied: ", ": 403 policy_denied\n"},
		},
		{
			name: "principal bound", args: []string{"-client-ca", f.rootFile, "-bindings", bindings, aliceChain}, code: 0,
			verdicts: []string{"claim ok", "screen ok", "verify ok", "revocation off", "principal ok", "policy off"},
			contains: []string{"principal   ok      \"payments-svc\"\n", "principal   payments-svc\n"},
		},
		{
			name: "principal unbound", args: []string{"-client-ca", f.rootFile, "-bindings", bindings, bob}, code: 0,
			contains: []string{"principal   ok      no principal bound\n"},
		},
		{
			name: "CRL good", args: []string{"-client-ca", f.rootFile, "-crl", crl, aliceChain}, code: 0,
			verdicts: []string{"claim ok", "screen ok", "verify ok", "revocation ok", "principal off", "policy off"},
			contains: []string{"revocation  ok      not revoked: CRL answer ", "revocation  CRL answer, "},
		},
		{
			name: "CRL revoked", args: []string{"-client-ca", f.rootFile, "-crl", crl, revokedFile}, code: 1,
			verdicts: []string{"claim ok", "screen ok", "verify ok", "revocation REFUSED", "principal not reached", "policy not reached"},
			contains: []string{"revocation  REFUSED certificate_revoked: CRL " + crl + " says serial " + mtls.FormatSerial(revoked.Certificate.SerialNumber)},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			code := run(tt.args, &stdout, &stderr)
			out := stdout.String()
			require.Equal(t, tt.code, code, "stdout:\n%s\nstderr:\n%s", out, stderr.String())
			assert.Empty(t, stderr.String())
			if tt.verdicts != nil {
				assert.Equal(t, tt.verdicts, verdicts(t, out), out)
			}
			for _, s := range tt.contains {
				assert.Contains(t, out, s)
			}
		})
	}
}

func TestDiagnoseUsage(t *testing.T) {
	f := newFixture(t)
	cert := f.write("alice.pem", f.issuing.NewClient("alice").ChainPEM())
	tests := []struct {
		name string
		args []string
		want string
	}{
		{"no file", []string{"-client-ca", f.rootFile}, "want one certificate file, got 0"},
		{"two files", []string{"-client-ca", f.rootFile, cert, cert}, "want one certificate file, got 2"},
		{"no trust", []string{cert}, "-client-ca or -pin is required"},
		{"bad pin", []string{"-pin", "abc", cert}, `invalid value "abc" for flag -pin`},
		{"bad time", []string{"-client-ca", f.rootFile, "-at", "next week", cert}, "invalid value"},
		{"fail open alone", []string{"-client-ca", f.rootFile, "-fail-open", cert}, "-fail-open needs"},
		{"missing certificate", []string{"-client-ca", f.rootFile, "/nonexistent/client.pem"}, "no such file"},
		{"not PEM", []string{"-client-ca", f.rootFile, f.write("junk.pem", []byte("junk"))}, "no PEM certificate found"},
		{"missing CA", []string{"-client-ca", "/nonexistent/ca.pem", cert}, "RootCAFiles[0]"},
		{"bad policy", []string{"-client-ca", f.rootFile, "-policy", f.write("p.json", []byte(`{"dns": []}`)), cert}, "$.dns: empty list"},
		{"missing bindings", []string{"-client-ca", f.rootFile, "-bindings", "/nonexistent/bindings.json", cert}, "no such file"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			assert.Equal(t, 2, run(tt.args, &stdout, &stderr))
			assert.Contains(t, stderr.String(), tt.want)
			assert.Empty(t, stdout.String())
		})
	}
	t.Run("help", func(t *testing.T) {
		var stdout, stderr bytes.Buffer
		assert.Equal(t, 0, run([]string{"-h"}, &stdout, &stderr))
		assert.Contains(t, stderr.String(), "usage: diagnose [flags] client.pem")
	})
}

func TestDiagnoseJSON(t *testing.T) {
	f := newFixture(t)
	alice := f.issuing.NewClient("alice", mtlstest.WithDNS("alice.example.test"), mtlstest.WithIPs("192.0.2.7"))
	chain := f.write("alice.pem", alice.ChainPEM())

	var stdout bytes.Buffer
	require.Equal(t, 0, run([]string{"-json", "-client-ca", f.rootFile, chain}, &stdout, &bytes.Buffer{}))
	assert.True(t, strings.HasPrefix(stdout.String(), "{\n  \"accepted\": true,\n"), "two-space indentation")
	var got map[string]any
	require.NoError(t, json.Unmarshal(stdout.Bytes(), &got))
	assert.Equal(t, true, got["accepted"])
	assert.NotContains(t, got, "reason")
	require.Len(t, got["steps"], 6)
	assert.Equal(t, map[string]any{"name": "claim", "verdict": "ok",
		"note": `2 certificates presented (leaf "CN=alice", then "CN=Issuing CA")`}, got["steps"].([]any)[0])
	assert.Equal(t, map[string]any{"name": "policy", "verdict": "off", "note": "no -policy"}, got["steps"].([]any)[5])
	id := got["identity"].(map[string]any)
	assert.Equal(t, "CN=alice", id["subject"])
	assert.Equal(t, "CN=Issuing CA", id["issuer"])
	assert.Equal(t, "0x"+alice.Certificate.SerialNumber.Text(16), id["serial"])
	assert.Equal(t, alice.SHA256(), id["sha256"])
	assert.Equal(t, []any{"alice.example.test"}, id["dns"])
	assert.Equal(t, []any{}, id["emails"], "empty lists are [] not null")
	assert.Equal(t, []any{"192.0.2.7"}, id["ips"])
	assert.Equal(t, []any{"CN=alice", "CN=Issuing CA", "CN=Root CA"}, id["chain"])
	assert.Equal(t, alice.Certificate.NotAfter.UTC().Format(time.RFC3339), id["not_after"])
	assert.Equal(t, map[string]any{"checked": false}, id["revocation"])

	stdout.Reset()
	leaf := f.write("leaf.pem", alice.CertPEM())
	require.Equal(t, 1, run([]string{"-json", "-client-ca", f.rootFile, leaf}, &stdout, &bytes.Buffer{}))
	got = nil
	require.NoError(t, json.Unmarshal(stdout.Bytes(), &got))
	assert.Equal(t, false, got["accepted"])
	assert.Equal(t, float64(401), got["status"])
	assert.Equal(t, "certificate_untrusted", got["reason"])
	assert.Equal(t, "verify", got["step"])
	assert.Contains(t, got["error"], "IntermediateFiles")
	assert.NotContains(t, got, "identity")
	verify := got["steps"].([]any)[2].(map[string]any)
	assert.Equal(t, "refused", verify["verdict"])
	assert.Equal(t, "not_reached", got["steps"].([]any)[3].(map[string]any)["verdict"])
}

// TestDiagnoseRedactsURLSecrets: the user information, query values and fragment of the URLs of
// revocation sources (flags, or the certificate's) show nowhere in what diagnose prints.
func TestDiagnoseRedactsURLSecrets(t *testing.T) {
	f := newFixture(t)
	secrets := []string{"u5ername", "pa55word", "s3cretsig", "fr4gment"}
	withSecrets := func(base, path string) string {
		return strings.Replace(base, "://", "://u5ername:pa55word@", 1) + path + "?sig=s3cretsig#fr4gment"
	}
	alice := f.issuing.NewClient("alice")
	revoking := f.issuing.NewCRL(mtlstest.CRL{Revoked: []*big.Int{alice.Certificate.SerialNumber}})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/issuing.crl" {
			_, _ = w.Write(revoking)
			return
		}
		http.Error(w, "down", http.StatusBadGateway)
	}))
	t.Cleanup(srv.Close)
	aliceFile := f.write("alice.pem", alice.ChainPEM())
	dpFile := f.write("dp.pem", f.issuing.NewClient("dp", mtlstest.WithCRLDistributionPoints(withSecrets(srv.URL, "/down.crl"))).ChainPEM())
	aiaFile := f.write("aia.pem", f.issuing.NewClient("aia", mtlstest.WithOCSPServer(withSecrets(srv.URL, "/ocsp"))).ChainPEM())
	tests := []struct {
		name string
		args []string
		code int
		want string
	}{
		{"CRL URL revoking", []string{"-crl", withSecrets(srv.URL, "/issuing.crl"), aliceFile}, 1, "/issuing.crl?sig=REDACTED says serial"},
		{"OCSP responder failing", []string{"-ocsp-responder", withSecrets(srv.URL, "/ocsp"), aliceFile}, 1, "/ocsp?sig=REDACTED: HTTP status 502"},
		{"distribution point failing", []string{"-crl-dp", dpFile}, 1, "/down.crl?sig=REDACTED: HTTP status 502"},
		{"AIA responder failing", []string{"-ocsp", aiaFile}, 1, "/ocsp?sig=REDACTED: HTTP status 502"},
		{"responder refused", []string{"-ocsp-responder", withSecrets("ldap://h.test", "/"), aliceFile}, 2, "Revocation.OCSP.Responder"},
	}
	for _, tt := range tests {
		for _, format := range []string{"text", "json"} {
			t.Run(tt.name+" "+format, func(t *testing.T) {
				args := append([]string{"-client-ca", f.rootFile}, tt.args...)
				if format == "json" {
					args = append([]string{"-json"}, args...)
				}
				var stdout, stderr bytes.Buffer
				require.Equal(t, tt.code, run(args, &stdout, &stderr), "stdout:\n%s\nstderr:\n%s", stdout.String(), stderr.String())
				assert.Contains(t, stdout.String()+stderr.String(), tt.want)
				for _, s := range secrets {
					assert.NotContains(t, stdout.String(), s)
					assert.NotContains(t, stderr.String(), s)
				}
			})
		}
	}
}

// TestCRLURLSecretsAreNotPrinted: a -crl URL, whatever the case of its scheme, is printed
// without its user information and query values.
func TestCRLURLSecretsAreNotPrinted(t *testing.T) {
	f := newFixture(t)
	alice := f.write("alice.pem", f.issuing.NewClient("alice").ChainPEM())
	for _, tt := range []struct{ name, crl string }{
		{"upper case https", "HTTPS://crl:pa55word@127.0.0.1:1/a.crl?sig=s3cretsig"},
		{"other scheme", "FTP://crl:pa55word@127.0.0.1:1/a.crl?sig=s3cretsig"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			var out, errb bytes.Buffer
			code := run([]string{"-client-ca", f.rootFile, "-crl", tt.crl, alice}, &out, &errb)
			assert.NotEqual(t, 0, code)
			for _, s := range []string{"pa55word", "s3cretsig"} {
				assert.NotContains(t, out.String()+errb.String(), s)
			}
		})
	}
}
