package mtls

import (
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"encoding/hex"
	"net/http"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/certgate/mtls/mtlstest"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestVerificationOutcomes(t *testing.T) {
	p := newPKI(t)
	now := time.Now()
	past := mtlstest.WithValidity(now.Add(-48*time.Hour), now.Add(-time.Hour))
	future := mtlstest.WithValidity(now.Add(time.Hour), now.Add(48*time.Hour))
	expiredIssuing := p.root.NewIntermediate("Expired Issuing CA", past)
	futureIssuing := p.root.NewIntermediate("Future Issuing CA", future)
	serverOnlyIssuing := p.root.NewIntermediate("Server-only Issuing CA",
		mtlstest.WithExtKeyUsage(x509.ExtKeyUsageServerAuth))
	selfSigned := mtlstest.NewSelfSigned("partner-42")
	expiredSelfSigned := mtlstest.NewSelfSigned("partner-43", past)
	deep := p.issuing.NewIntermediate("Deep CA")

	tests := []struct {
		name    string
		cfg     func(*Config)
		chain   []*x509.Certificate
		wantErr error
		check   func(t *testing.T, id *Identity)
	}{
		{name: "leaf and intermediate presented", chain: p.alice.Chain(),
			check: func(t *testing.T, id *Identity) {
				require.Len(t, id.Chain, 3)
				assert.Equal(t, p.root.Certificate.Raw, id.Chain[2].Raw)
				assert.False(t, id.Pinned)
			}},
		{name: "leaf, intermediate and root presented",
			chain: append(p.alice.Chain(), p.root.Certificate)},
		{name: "leaf alone, intermediate configured", chain: []*x509.Certificate{p.alice.Certificate},
			cfg: func(c *Config) { c.Intermediates = p.issuing.Pool() }},
		{name: "leaf alone, intermediate unknown", chain: []*x509.Certificate{p.alice.Certificate},
			wantErr: ErrUntrusted},
		{name: "issued by another CA", chain: p.other.NewClient("mallory").Chain(), wantErr: ErrUntrusted},
		{name: "same subject, other CA", chain: p.other.NewIntermediate("Test Issuing CA").NewClient("alice").Chain(),
			wantErr: ErrUntrusted},
		{name: "intermediate presented as the only anchor", chain: p.alice.Chain(),
			cfg:     func(c *Config) { c.RootCAs = p.other.Pool(); c.Intermediates = p.issuing.Pool() },
			wantErr: ErrUntrusted},
		{name: "expired leaf", chain: p.issuing.NewClient("old", past).Chain(), wantErr: ErrExpired},
		{name: "leaf not yet valid", chain: p.issuing.NewClient("new", future).Chain(), wantErr: ErrNotYetValid},
		{name: "expired intermediate", chain: expiredIssuing.NewClient("bob").Chain(), wantErr: ErrExpired},
		{name: "intermediate not yet valid", chain: futureIssuing.NewClient("erin").Chain(), wantErr: ErrNotYetValid},
		{name: "server certificate", chain: p.issuing.NewServer("api.example.test").Chain(), wantErr: ErrWrongUsage},
		{name: "no extended key usage", chain: p.issuing.NewClient("noeku", mtlstest.WithExtKeyUsage()).Chain(),
			wantErr: ErrWrongUsage},
		{name: "leaf is a CA", chain: p.issuing.NewClient("ca", mtlstest.WithCA()).Chain(), wantErr: ErrWrongUsage},
		{name: "intermediate not allowed to issue client certificates",
			chain: serverOnlyIssuing.NewClient("carol").Chain(), wantErr: ErrWrongUsage},
		{name: "pinned self-signed", chain: selfSigned.Chain(),
			cfg: func(c *Config) { c.PinnedSHA256 = []string{selfSigned.SHA256()} },
			check: func(t *testing.T, id *Identity) {
				assert.True(t, id.Pinned)
				assert.Len(t, id.Chain, 1)
			}},
		{name: "pinned with colons and upper case", chain: selfSigned.Chain(),
			cfg: func(c *Config) {
				c.RootCAs, c.RootCAFiles = nil, nil
				c.PinnedSHA256 = []string{colonUpper(selfSigned.SHA256())}
			}},
		{name: "pinned as openssl prints the fingerprint", chain: selfSigned.Chain(),
			cfg: func(c *Config) {
				c.RootCAs = nil
				c.PinnedSHA256 = []string{"sha256 Fingerprint=" + colonUpper(selfSigned.SHA256()) + "\n"}
			}},
		{name: "pinned but expired", chain: expiredSelfSigned.Chain(), wantErr: ErrExpired,
			cfg: func(c *Config) { c.PinnedSHA256 = []string{expiredSelfSigned.SHA256()} }},
		{name: "self-signed, not pinned", chain: selfSigned.Chain(), wantErr: ErrUntrusted},
		{name: "pins only, CA-issued leaf", chain: p.alice.Chain(), wantErr: ErrUntrusted,
			cfg: func(c *Config) {
				c.RootCAs = nil
				c.PinnedSHA256 = []string{selfSigned.SHA256()}
			}},
		{name: "chain deeper than allowed", chain: deep.NewClient("dave").Chain(), wantErr: ErrUntrusted,
			cfg: func(c *Config) { c.MaxChainDepth = 2 }},
		{name: "chain exactly as deep as allowed", chain: deep.NewClient("dave").Chain(),
			cfg: func(c *Config) { c.MaxChainDepth = 3 }},
		{name: "chain presented out of order", chain: []*x509.Certificate{deep.NewClient("dave").Certificate, p.issuing.Certificate, deep.Certificate}},
		{name: "unrelated CA presented as well", chain: append(p.alice.Chain(), p.other.Certificate)},
		{name: "intermediate presented and configured", chain: p.alice.Chain(),
			cfg: func(c *Config) { c.Intermediates = p.issuing.Pool() }},
		{name: "too many certificates presented", wantErr: ErrUntrusted,
			chain: append(p.alice.Chain(), slices.Repeat([]*x509.Certificate{p.other.Certificate}, defaultMaxChainDepth+presentedSurplus)...)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := Config{RootCAs: p.root.Pool()}
			if tt.cfg != nil {
				tt.cfg(&cfg)
			}
			m, err := New(cfg)
			require.NoError(t, err)
			id, err := m.Authenticate(mtlstest.NewRequest(http.MethodGet, "https://api.example.test/", tt.chain...))
			if tt.wantErr != nil {
				require.ErrorIs(t, err, tt.wantErr)
				assert.Nil(t, id)
				var e *Error
				require.ErrorAs(t, err, &e)
				assert.Equal(t, tt.chain[0], e.Leaf)
				assert.True(t, strings.HasPrefix(err.Error(), "mtls: "), err.Error())
				return
			}
			require.NoError(t, err)
			require.NotNil(t, id)
			assert.Equal(t, SourceTLS, id.Source)
			assert.Equal(t, tt.chain[0], id.Leaf)
			assert.Equal(t, sha256Hex(tt.chain[0].Raw), id.SHA256)
			if tt.check != nil {
				tt.check(t, id)
			}
		})
	}
}

func TestParseFingerprint(t *testing.T) {
	const digits = "8db667b1f6243512ce1ee075a0c7a7123602dcb519e452244839a416e54099e7"
	want, err := hex.DecodeString(digits)
	require.NoError(t, err)
	tests := []struct {
		name, in string
		ok       bool
	}{
		{"lowercase hex", digits, true},
		{"colons and upper case", colonUpper(digits), true},
		{"spaces between bytes", strings.ReplaceAll(colonUpper(digits), ":", " "), true},
		{"surrounding space and newline", " " + digits + "\n", true},
		{"openssl 3 output", "sha256 Fingerprint=" + colonUpper(digits) + "\n", true},
		{"openssl 1.1 output", "SHA256 Fingerprint=" + colonUpper(digits), true},
		{"label without digits", "sha256 Fingerprint=", false},
		{"label twice", "sha256 Fingerprint=sha256 Fingerprint=" + digits, false},
		{"another label case", "Sha256 fingerprint=" + digits, false},
		{"SHA-1 fingerprint", "SHA1 Fingerprint=" + colonUpper(digits[:40]), false},
		{"label after the digits", digits + " sha256 Fingerprint=", false},
		{"too short", digits[:62], false},
		{"not hex", "zz" + digits[2:], false},
		{"empty", "", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			sum, err := ParseFingerprint(tt.in)
			if !tt.ok {
				require.Error(t, err)
				assert.True(t, strings.HasPrefix(err.Error(), "mtls: fingerprint "), err.Error())
				return
			}
			require.NoError(t, err)
			assert.Equal(t, want, sum[:])
		})
	}
}

func colonUpper(hexFP string) string {
	var b strings.Builder
	for i := 0; i < len(hexFP); i += 2 {
		if i > 0 {
			b.WriteByte(':')
		}
		b.WriteString(strings.ToUpper(hexFP[i : i+2]))
	}
	return b.String()
}

func TestVerificationWrapsX509Cause(t *testing.T) {
	p := newPKI(t)
	m, err := New(Config{RootCAs: p.root.Pool()})
	require.NoError(t, err)
	_, err = m.Authenticate(mtlstest.NewRequest(http.MethodGet, "https://api.example.test/", p.other.NewClient("mallory").Chain()...))
	require.ErrorIs(t, err, ErrUntrusted)
	var unknown x509.UnknownAuthorityError
	require.ErrorAs(t, err, &unknown)
}

func TestIdentityFields(t *testing.T) {
	p := newPKI(t)
	m, err := New(Config{RootCAs: p.root.Pool()})
	require.NoError(t, err)
	id, err := m.Authenticate(mtlstest.NewRequest(http.MethodGet, "https://api.example.test/", p.alice.Chain()...))
	require.NoError(t, err)

	sum := sha256.Sum256(p.alice.Certificate.Raw)
	assert.Equal(t, hex.EncodeToString(sum[:]), id.SHA256)
	assert.Len(t, id.X5tS256, 43, "base64url of 32 bytes without padding")
	assert.NotContains(t, id.X5tS256, "=")
	assert.Equal(t, []string{"alice.example.test"}, id.DNSNames)
	assert.Equal(t, []string{"alice@example.test"}, id.EmailAddresses)
	require.Len(t, id.URIs, 1)
	assert.Equal(t, "spiffe://example.test/ns/prod/sa/alice", id.SPIFFEID)
	require.Len(t, id.IPAddresses, 1)
	assert.Equal(t, "192.0.2.7", id.IPAddresses[0].String())
	assert.Equal(t, p.alice.Certificate.NotAfter, id.NotAfter())
}

func TestSPIFFEID(t *testing.T) {
	tests := []struct {
		name string
		uris []string
		want string
	}{
		{"one SPIFFE URI", []string{"spiffe://acme.test/ns/prod/sa/alice"}, "spiffe://acme.test/ns/prod/sa/alice"},
		{"trust domain only", []string{"spiffe://acme.test"}, "spiffe://acme.test"},
		{"no URI", nil, ""},
		{"two URIs", []string{"spiffe://acme.test/a", "spiffe://acme.test/b"}, ""},
		{"other scheme", []string{"https://acme.test/a"}, ""},
		{"upper-case trust domain", []string{"spiffe://ACME.test/a"}, ""},
		{"port", []string{"spiffe://acme.test:443/a"}, ""},
		{"user info", []string{"spiffe://eve@acme.test/a"}, ""},
		{"query", []string{"spiffe://acme.test/a?x=1"}, ""},
		{"fragment", []string{"spiffe://acme.test/a#x"}, ""},
		{"trailing slash", []string{"spiffe://acme.test/a/"}, ""},
		{"empty segment", []string{"spiffe://acme.test/a//b"}, ""},
	}
	ca := mtlstest.NewRootCA("SPIFFE CA")
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			leaf := ca.NewClient("w", mtlstest.WithURIs(tt.uris...))
			assert.Equal(t, tt.want, spiffeID(leaf.Certificate.URIs))
		})
	}
}

func TestNewReportsEveryProblem(t *testing.T) {
	dir := t.TempDir()
	leafFile := filepath.Join(dir, "leaf.pem")
	p := newPKI(t)
	require.NoError(t, os.WriteFile(leafFile, p.alice.CertPEM(), 0o600))
	garbage := filepath.Join(dir, "garbage.pem")
	require.NoError(t, os.WriteFile(garbage, []byte("not a certificate"), 0o600))
	keyFile := filepath.Join(dir, "key.pem")
	require.NoError(t, os.WriteFile(keyFile, p.alice.KeyPEM(), 0o600))

	_, err := New(Config{
		RootCAFiles:       []string{filepath.Join(dir, "missing.pem"), leafFile, garbage},
		IntermediateFiles: []string{keyFile},
		PinnedSHA256:      []string{"abc", strings.Repeat("zz", 32)},
		MaxChainDepth:     -1,
	})
	require.Error(t, err)
	for _, want := range []string{
		"missing.pem", "is not a CA certificate", "no PEM certificate found", `"PRIVATE KEY", want CERTIFICATE`,
		"not 64 hexadecimal digits", "not hexadecimal", "MaxChainDepth: -1 is negative",
	} {
		assert.Contains(t, err.Error(), want)
	}

	_, err = New(Config{})
	require.ErrorContains(t, err, "no trust anchor")
}

func TestReloadRootFiles(t *testing.T) {
	dir := t.TempDir()
	rootFile := filepath.Join(dir, "roots.pem")
	a, b := newPKI(t), newPKI(t)
	require.NoError(t, os.WriteFile(rootFile, a.root.CertPEM(), 0o600))
	m, err := New(Config{RootCAFiles: []string{rootFile}})
	require.NoError(t, err)

	_, err = m.Authenticate(mtlstest.NewRequest(http.MethodGet, "https://api.example.test/", a.alice.Chain()...))
	require.NoError(t, err)
	_, err = m.Authenticate(mtlstest.NewRequest(http.MethodGet, "https://api.example.test/", b.alice.Chain()...))
	require.ErrorIs(t, err, ErrUntrusted)

	require.NoError(t, os.WriteFile(rootFile, b.root.CertPEM(), 0o600))
	require.NoError(t, m.Reload())
	_, err = m.Authenticate(mtlstest.NewRequest(http.MethodGet, "https://api.example.test/", a.alice.Chain()...))
	require.ErrorIs(t, err, ErrUntrusted, "a cached acceptance must not survive a trust change")
	_, err = m.Authenticate(mtlstest.NewRequest(http.MethodGet, "https://api.example.test/", b.alice.Chain()...))
	require.NoError(t, err, "a cached refusal must not survive a trust change")

	require.NoError(t, os.WriteFile(rootFile, []byte("-----BEGIN CERTIFICATE-----\ngarbage\n"), 0o600))
	require.Error(t, m.Reload())
	_, err = m.Authenticate(mtlstest.NewRequest(http.MethodGet, "https://api.example.test/", b.alice.Chain()...))
	require.NoError(t, err, "a bad reload keeps the trust in force")
}

func TestParsePEMCertificates(t *testing.T) {
	p := newPKI(t)
	bundle := append([]byte("# Test Root CA\n"), p.root.CertPEM()...)
	bundle = append(bundle, []byte("# Test Issuing CA\n")...)
	bundle = append(bundle, p.issuing.CertPEM()...)
	certs, err := ParsePEMCertificates(bundle)
	require.NoError(t, err)
	require.Len(t, certs, 2)

	_, err = ParsePEMCertificates(append(p.root.CertPEM(), []byte("-----BEGIN CERTIFICATE-----\n!!\n")...))
	require.ErrorContains(t, err, "undecodable PEM block")
	_, err = ParsePEMCertificates(nil)
	require.ErrorContains(t, err, "no PEM certificate found")
}

func TestTLSConfig(t *testing.T) {
	p := newPKI(t)
	m, err := New(Config{RootCAs: p.root.Pool()})
	require.NoError(t, err)

	cfg := m.TLSConfig(nil)
	assert.Equal(t, uint16(tls.VersionTLS12), cfg.MinVersion)
	assert.Equal(t, tls.RequestClientCert, cfg.ClientAuth)
	require.NotNil(t, cfg.VerifyConnection, "the handshake screens the presented chain")
	require.NoError(t, cfg.VerifyConnection(tls.ConnectionState{}), "by default the decision is made in HTTP")
	require.NoError(t, cfg.VerifyConnection(tls.ConnectionState{PeerCertificates: p.other.NewClient("x").Chain()}),
		"an untrusted chain within the screen's bounds gets its readable refusal in HTTP")

	called := false
	base := &tls.Config{
		MinVersion:       tls.VersionTLS13,
		ClientAuth:       tls.RequireAnyClientCert,
		VerifyConnection: func(tls.ConnectionState) error { called = true; return nil },
	}
	cfg = m.TLSConfig(base, RejectAtHandshake())
	assert.Equal(t, uint16(tls.VersionTLS13), cfg.MinVersion)
	assert.Equal(t, tls.RequireAnyClientCert, cfg.ClientAuth)
	assert.Equal(t, tls.RequireAnyClientCert, base.ClientAuth, "base is not modified")

	require.ErrorIs(t, cfg.VerifyConnection(tls.ConnectionState{}), ErrNoCertificate)
	require.ErrorIs(t, cfg.VerifyConnection(tls.ConnectionState{PeerCertificates: p.other.NewClient("x").Chain()}), ErrUntrusted)
	assert.False(t, called, "the base callback runs only after the middleware accepted")
	require.NoError(t, cfg.VerifyConnection(tls.ConnectionState{PeerCertificates: p.alice.Chain()}))
	assert.True(t, called)
}

func TestNewRefusesRevocationOnUnverifiedChains(t *testing.T) {
	p := newPKI(t)
	_, err := New(Config{
		RootCAs: p.root.Pool(),
		Header: &HeaderConfig{
			Format:                            MustHeaderFormat("haproxy"),
			TrustedProxies:                    []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8")},
			DangerouslyTrustProxyVerification: true,
		},
		Revocation: &RevocationConfig{OCSP: &OCSPConfig{}},
	})
	require.ErrorContains(t, err, "cannot be combined with Header.DangerouslyTrustProxyVerification")
}

func TestRejectAtHandshakeLetsProxiesWithoutCertificatesThrough(t *testing.T) {
	p := newPKI(t)
	m, err := New(Config{RootCAs: p.root.Pool(), Header: &HeaderConfig{
		Format:         MustHeaderFormat("haproxy"),
		TrustedProxies: []netip.Prefix{netip.MustParsePrefix("127.0.0.1/32")},
	}})
	require.NoError(t, err)
	cfg := m.TLSConfig(nil, RejectAtHandshake())
	require.NoError(t, cfg.VerifyConnection(tls.ConnectionState{}))
	require.ErrorIs(t, cfg.VerifyConnection(tls.ConnectionState{PeerCertificates: p.other.NewClient("x").Chain()}), ErrUntrusted)
}

// TestUnhandledCriticalExtension: a leaf with a critical extension that is not understood is
// refused on each of the three paths: verified up to a root, pinned, forwarded by a proxy.
func TestUnhandledCriticalExtension(t *testing.T) {
	p := newPKI(t)
	ext := func(critical bool) mtlstest.Option {
		return mtlstest.WithExtension(pkix.Extension{Id: asn1.ObjectIdentifier{1, 3, 6, 1, 4, 1, 99999, 7}, Critical: critical, Value: []byte{5, 0}})
	}
	run := map[string]func(t *testing.T, critical bool) error{
		"verified": func(t *testing.T, critical bool) error {
			tr, err := (&trustConfig{roots: p.root.Pool(), maxDepth: defaultMaxChainDepth}).load()
			require.NoError(t, err)
			_, _, err = tr.verify(p.issuing.NewClient("crit", ext(critical)).Chain(), time.Now())
			return err
		},
		"pinned": func(t *testing.T, critical bool) error {
			leaf := mtlstest.NewSelfSigned("crit", ext(critical))
			tr, err := (&trustConfig{pins: []string{leaf.SHA256()}, maxDepth: defaultMaxChainDepth}).load()
			require.NoError(t, err)
			_, pinned, err := tr.verify(leaf.Chain(), time.Now())
			assert.Equal(t, err == nil, pinned)
			return err
		},
		"forwarded": func(t *testing.T, critical bool) error {
			_, err := (&trust{maxDepth: defaultMaxChainDepth}).checkForwarded(p.issuing.NewClient("crit", ext(critical)).Chain(), time.Now())
			return err
		},
	}
	for name, verify := range run {
		t.Run(name, func(t *testing.T) {
			require.NoError(t, verify(t, false), "a non-critical unknown extension is ignored")
			err := verify(t, true)
			require.ErrorIs(t, err, ErrUntrusted)
			var e *Error
			require.ErrorAs(t, err, &e)
			assert.Equal(t, "the client certificate has an unhandled critical extension 1.3.6.1.4.1.99999.7", e.Detail)
			require.NotNil(t, e.Leaf)
		})
	}
}

// TestClip: clip and clipLog cut what a client wrote at a rune boundary, at most utf8.UTFMax-1
// bytes before the bound, and keep the bytes before the cut as they are: an invalid byte stays
// for the quoting to show, so that "adm\xffin" never reads as "admin".
func TestClip(t *testing.T) {
	a := strings.Repeat("a", maxNameInDetail)
	tests := []struct {
		name string
		in   string
		want string
	}{
		{name: "short", in: "admin.example", want: "admin.example"},
		{name: "short, invalid byte kept", in: "adm\xffin.example", want: "adm\xffin.example"},
		{name: "at the bound", in: a, want: a},
		{name: "one byte over", in: a + "b", want: a + "..."},
		{name: "invalid byte kept before the cut", in: "adm\xffin" + a, want: ("adm\xffin" + a)[:maxNameInDetail] + "..."},
		{name: "2-byte rune across the bound", in: a[:maxNameInDetail-1] + "é" + "z", want: a[:maxNameInDetail-1] + "..."},
		{name: "4-byte rune across the bound", in: a[:maxNameInDetail-2] + "😀" + "z", want: a[:maxNameInDetail-2] + "..."},
		{name: "4-byte rune ending at the bound", in: a[:maxNameInDetail-4] + "😀" + "z", want: a[:maxNameInDetail-4] + "😀..."},
		{name: "continuation bytes only", in: strings.Repeat("\x80", 2*maxNameInDetail), want: strings.Repeat("\x80", maxNameInDetail) + "..."},
		{name: "invalid byte at the cut", in: a[:maxNameInDetail-1] + "\xff\x80z", want: a[:maxNameInDetail-1] + "..."},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			assert.Equal(t, tt.want, clip(tt.in))
			assert.LessOrEqual(t, len(clip(tt.in)), maxNameInDetail+len("..."))
		})
	}
	t.Run("log value", func(t *testing.T) {
		long := "\xff" + strings.Repeat("é", maxLogValue)
		got := clipLog(long)
		assert.Equal(t, long[:maxLogValue-1]+"...("+strconv.Itoa(len(long)-maxLogValue+1)+" bytes cut)", got)
		assert.Equal(t, "adm\xffin", clipLog("adm\xffin"))
	})
}
