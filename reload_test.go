package mtls

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/certgate/mtls/mtlstest"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// reloadFiles is a configuration read from files: a root file, a policy file and a binding file.
type reloadFiles struct {
	dir                           string
	roots, policy, bindings, deny string
}

func newReloadFiles(t *testing.T) *reloadFiles {
	dir := t.TempDir()
	return &reloadFiles{
		dir:      dir,
		roots:    filepath.Join(dir, "roots.pem"),
		policy:   filepath.Join(dir, "policy.json"),
		bindings: filepath.Join(dir, "bindings.json"),
		deny:     filepath.Join(dir, "deny.txt"),
	}
}

func (f *reloadFiles) write(t *testing.T, name string, data []byte) {
	t.Helper()
	require.NoError(t, os.WriteFile(name, data, 0o600))
}

// trustSet is one generation of the files: clients of ca, bound to principal, which the policy
// requires.
type trustSet struct {
	ca        *mtlstest.CA
	client    *mtlstest.Leaf
	principal string
}

func newTrustSet(name string) *trustSet {
	ca := mtlstest.NewRootCA("Root " + name)
	return &trustSet{ca: ca, client: ca.NewClient("client-" + name), principal: "p-" + name}
}

// writeSet writes the files of s.
func (f *reloadFiles) writeSet(t *testing.T, s *trustSet) {
	f.write(t, f.roots, s.ca.CertPEM())
	f.write(t, f.policy, []byte(`{"principal": ["`+s.principal+`"]}`))
	f.write(t, f.bindings, []byte(`{"`+s.principal+`": ["`+Fingerprint(s.client.Certificate)+`"]}`))
}

func (f *reloadFiles) config(t *testing.T) Config {
	store, err := NewBindingStore(f.bindings)
	require.NoError(t, err)
	return Config{RootCAFiles: []string{f.roots}, PolicyFiles: []string{f.policy}, Principals: store}
}

// TestReloadUnderLoad: requests racing reloads that swap between two sets of files (roots,
// policy, bindings) each see one set whole: the client of the set in force is accepted under
// its principal, the other is untrusted; never denied by the policy of the other set.
func TestReloadUnderLoad(t *testing.T) {
	f := newReloadFiles(t)
	a, b := newTrustSet("A"), newTrustSet("B")
	f.writeSet(t, a)
	m, err := New(f.config(t))
	require.NoError(t, err)
	t.Cleanup(func() { _ = m.Close() })

	const workers, requests, reloads = 8, 200, 40
	var wg sync.WaitGroup
	var mixed atomic.Int64
	var firstMix atomic.Value
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range requests {
				s := a
				if (w+i)%2 == 1 {
					s = b
				}
				id, err := m.Authenticate(mtlstest.NewRequest(http.MethodGet, "https://api.example.test/", s.client.Chain()...))
				ok := err == nil && id.Principal == s.principal || errors.Is(err, ErrUntrusted)
				if !ok {
					mixed.Add(1)
					firstMix.CompareAndSwap(nil, fmt.Sprintf("%s: %v %v", s.principal, id, err))
				}
			}
		}()
	}
	for i := range reloads {
		s := b
		if i%2 == 1 {
			s = a
		}
		f.writeSet(t, s)
		require.NoError(t, m.Reload())
	}
	wg.Wait()
	require.Zero(t, mixed.Load(), "an answer mixed two generations: %v", firstMix.Load())
	assert.Equal(t, uint64(reloads+1), m.ReloadStatus().Files.Generation)

	id, err := m.Authenticate(mtlstest.NewRequest(http.MethodGet, "https://api.example.test/", a.client.Chain()...)) // the last reload wrote a
	require.NoError(t, err)
	assert.Equal(t, a.principal, id.Principal)
}

// TestReloadBadFileKeepsState: a reload with any bad file swaps nothing; the error names the
// field, and the status and the log say so.
func TestReloadBadFileKeepsState(t *testing.T) {
	a := newTrustSet("A")
	for _, tc := range []struct {
		field string
		file  func(f *reloadFiles) string
		bad   string
	}{
		{"RootCAFiles[1]", func(f *reloadFiles) string { return filepath.Join(f.dir, "more.pem") }, "-----BEGIN CERTIFICATE-----\ngarbage\n"},
		{"PinnedSHA256Files[0]", func(f *reloadFiles) string { return filepath.Join(f.dir, "pins.txt") }, "SHA1 Fingerprint=AB:CD\n"},
		{"PolicyFiles[0]", func(f *reloadFiles) string { return f.policy }, `{"principal": []}`},
		{"Principals", func(f *reloadFiles) string { return f.bindings }, `{"p-A": ["not hex"]}`},
		{"Revocation.DenyListFile", func(f *reloadFiles) string { return f.deny }, "sha256 zz\n"},
	} {
		t.Run(tc.field, func(t *testing.T) {
			f := newReloadFiles(t)
			f.writeSet(t, a)
			more, pins := filepath.Join(f.dir, "more.pem"), filepath.Join(f.dir, "pins.txt")
			f.write(t, more, mtlstest.NewRootCA("Other").CertPEM())
			f.write(t, pins, []byte("# none yet\n"))
			f.write(t, f.deny, nil)
			var logs bytes.Buffer
			cfg := f.config(t)
			cfg.RootCAFiles = append(cfg.RootCAFiles, more)
			cfg.PinnedSHA256Files = []string{pins}
			cfg.Revocation = &RevocationConfig{DenyListFile: f.deny}
			cfg.Logger = slog.New(slog.NewJSONHandler(&logs, nil))
			m, err := New(cfg)
			require.NoError(t, err)
			before := m.ReloadStatus().Files

			f.write(t, tc.file(f), []byte(tc.bad))
			err = m.Reload()
			var ce *ConfigError
			require.ErrorAs(t, err, &ce)
			assert.Equal(t, tc.field, ce.Field)

			id, err := m.Authenticate(mtlstest.NewRequest(http.MethodGet, "https://api.example.test/", a.client.Chain()...))
			require.NoError(t, err, "the last good state serves on")
			assert.Equal(t, a.principal, id.Principal)

			st := m.ReloadStatus().Files
			assert.Equal(t, before.Generation, st.Generation)
			assert.Equal(t, before.LastSuccess, st.LastSuccess)
			assert.Contains(t, st.LastError, tc.field)
			var rec struct{ Level, Msg, Error string }
			require.NoError(t, json.Unmarshal(logs.Bytes(), &rec))
			assert.Equal(t, "ERROR", rec.Level)
			assert.Contains(t, rec.Error, tc.field)

			f.writeSet(t, a) // repaired
			f.write(t, more, mtlstest.NewRootCA("Other").CertPEM())
			f.write(t, pins, nil)
			f.write(t, f.deny, nil)
			require.NoError(t, m.Reload())
			st = m.ReloadStatus().Files
			assert.Empty(t, st.LastError)
			assert.Equal(t, before.Generation+1, st.Generation)
			assert.Contains(t, logs.String(), `"level":"INFO","msg":"mtls: reloaded"`)
		})
	}
}

// TestReloadSwapsCacheAndDenyFile: every reload starts a new cache, and the deny list file
// swaps in with the rest.
func TestReloadSwapsCacheAndDenyFile(t *testing.T) {
	f := newReloadFiles(t)
	a := newTrustSet("A")
	f.writeSet(t, a)
	f.write(t, f.deny, []byte("# empty\n"))
	cfg := f.config(t)
	cfg.Revocation = &RevocationConfig{DenyListFile: f.deny}
	m, err := New(cfg)
	require.NoError(t, err)
	_, err = m.Authenticate(mtlstest.NewRequest(http.MethodGet, "https://api.example.test/", a.client.Chain()...))
	require.NoError(t, err)
	old := m.state.Load().cache
	require.Equal(t, 1, old.len())

	f.write(t, f.deny, []byte("sha256 "+Fingerprint(a.client.Certificate)+"\n"))
	require.NoError(t, m.Reload())
	assert.NotSame(t, old, m.state.Load().cache)
	_, err = m.Authenticate(mtlstest.NewRequest(http.MethodGet, "https://api.example.test/", a.client.Chain()...))
	require.ErrorIs(t, err, ErrRevoked)
}

// newPolledBindings: a middleware polling (by hand: the interval is an hour) a roots file holding
// trust set "A" and a binding directory with A's client certificate as p-A.pem.
func newPolledBindings(t *testing.T) (f *reloadFiles, a *trustSet, dir string, m *Middleware) {
	t.Helper()
	f = newReloadFiles(t)
	a = newTrustSet("A")
	f.writeSet(t, a)
	dir = filepath.Join(f.dir, "bindings")
	require.NoError(t, os.Mkdir(dir, 0o700))
	f.write(t, filepath.Join(dir, "p-A.pem"), a.client.CertPEM())
	store, err := NewBindingStore(dir)
	require.NoError(t, err)
	m, err = New(Config{RootCAFiles: []string{f.roots}, Principals: store, ReloadInterval: time.Hour})
	require.NoError(t, err)
	t.Cleanup(func() { _ = m.Close() })
	return f, a, dir, m
}

// TestPollReloadsChangedFiles drives polling step by step: nothing changed, a file only touched,
// a file changed, a file added to a binding directory.
func TestPollReloadsChangedFiles(t *testing.T) {
	f, _, dir, m := newPolledBindings(t)
	b := newTrustSet("B")
	gen := func() uint64 { return m.ReloadStatus().Files.Generation }

	assert.False(t, m.poll(), "nothing changed")
	later := time.Now().Add(time.Hour)
	require.NoError(t, os.Chtimes(f.roots, later, later))
	assert.False(t, m.poll(), "touched, same contents")
	assert.Equal(t, uint64(1), gen())

	f.write(t, f.roots, b.ca.CertPEM())
	assert.True(t, m.poll())
	assert.Equal(t, uint64(2), gen())
	_, err := m.Authenticate(mtlstest.NewRequest(http.MethodGet, "https://api.example.test/", b.client.Chain()...))
	require.NoError(t, err)
	assert.False(t, m.poll(), "reloaded: nothing new")

	f.write(t, filepath.Join(dir, "p-B.pem"), b.client.CertPEM())
	assert.True(t, m.poll())
	id, err := m.Authenticate(mtlstest.NewRequest(http.MethodGet, "https://api.example.test/", b.client.Chain()...))
	require.NoError(t, err)
	assert.Equal(t, "p-B", id.Principal)

	f.write(t, f.roots, []byte("garbage"))
	assert.True(t, m.poll())
	assert.NotEmpty(t, m.ReloadStatus().Files.LastError)
	assert.False(t, m.poll(), "a bad file is not retried until it changes")

	require.NoError(t, m.Close())
	require.NoError(t, m.Close(), "Close is idempotent")
}

// TestBindingStoreDirectReload: a store's own Reload still takes effect at once in a
// middleware, and the middleware's Reload swaps it again.
func TestBindingStoreDirectReload(t *testing.T) {
	f := newReloadFiles(t)
	a := newTrustSet("A")
	f.writeSet(t, a)
	store, err := NewBindingStore(f.bindings)
	require.NoError(t, err)
	isA, err := RequireSubject(Attributes{"cn": {"client-A"}})
	require.NoError(t, err)
	m, err := New(Config{RootCAFiles: []string{f.roots}, Principals: PrincipalChain{PrincipalWhen(isA, store)}})
	require.NoError(t, err)
	principal := func() string {
		id, err := m.Authenticate(mtlstest.NewRequest(http.MethodGet, "https://api.example.test/", a.client.Chain()...))
		require.NoError(t, err)
		return id.Principal
	}
	assert.Equal(t, "p-A", principal())
	f.write(t, f.bindings, []byte(`{"direct": ["`+Fingerprint(a.client.Certificate)+`"]}`))
	require.NoError(t, store.Reload())
	assert.Equal(t, "direct", principal())
	f.write(t, f.bindings, []byte(`{"again": ["`+Fingerprint(a.client.Certificate)+`"]}`))
	require.NoError(t, m.Reload())
	assert.Equal(t, "again", principal())
	assert.Equal(t, 1, store.Len())
}

func TestParsePins(t *testing.T) {
	leaf := mtlstest.NewSelfSigned("partner")
	fp := Fingerprint(leaf.Certificate)
	colons := strings.ToUpper(fp[:2])
	for i := 2; i < len(fp); i += 2 {
		colons += ":" + strings.ToUpper(fp[i:i+2])
	}
	for _, tc := range []struct {
		name, data string
		n          int
		err        string
	}{
		{"plain hex", fp + "\n", 1, ""},
		{"openssl 3", "sha256 Fingerprint=" + colons + "\n", 1, ""},
		{"openssl 1.1", "SHA256 Fingerprint=" + colons, 1, ""},
		{"comments and blanks", "# partners\n\n  " + fp + "  \r\n", 1, ""},
		{"empty", "", 0, ""},
		{"sha1", "SHA1 Fingerprint=AB:CD", 0, "line 1"},
		{"short", "# x\nabcd", 0, "line 2"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			sums, err := parsePins([]byte(tc.data))
			if tc.err != "" {
				require.ErrorContains(t, err, tc.err)
				return
			}
			require.NoError(t, err)
			require.Len(t, sums, tc.n)
			if tc.n > 0 {
				assert.Equal(t, fp, fmt.Sprintf("%x", sums[0]))
			}
		})
	}

	file := filepath.Join(t.TempDir(), "pins.txt")
	require.NoError(t, os.WriteFile(file, []byte("sha256 Fingerprint="+colons+"\n"), 0o600))
	m, err := New(Config{PinnedSHA256Files: []string{file}})
	require.NoError(t, err)
	id, err := m.Authenticate(mtlstest.NewRequest(http.MethodGet, "https://api.example.test/", leaf.Certificate))
	require.NoError(t, err)
	assert.True(t, id.Pinned)
}

// denyServer serves a deny list over TLS on 127.0.0.1: body, or status when not 200.
type denyServer struct {
	*httptest.Server
	mu       sync.Mutex
	body     string
	status   int
	location string // set: redirect there
}

func newDenyServer(t *testing.T) *denyServer {
	d := &denyServer{status: http.StatusOK, body: "# none\n"}
	d.Server = httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		d.mu.Lock()
		defer d.mu.Unlock()
		if d.location != "" {
			http.Redirect(w, r, d.location, http.StatusFound)
			return
		}
		w.WriteHeader(d.status)
		_, _ = w.Write([]byte(d.body))
	}))
	t.Cleanup(d.Close)
	return d
}

func (d *denyServer) serve(status int, body string) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.status, d.body = status, body
}

func TestDenyListURL(t *testing.T) {
	p := newPKI(t)
	d := newDenyServer(t)
	cfg := func(u string) Config {
		return Config{RootCAs: p.root.Pool(), Revocation: &RevocationConfig{
			DenyListURL: u, HTTPClient: d.Client(), DenyListInterval: time.Hour}}
	}
	m, err := New(cfg(d.URL + "/deny.txt"))
	require.NoError(t, err)
	t.Cleanup(func() { _ = m.Close() })
	_, err = m.Authenticate(mtlstest.NewRequest(http.MethodGet, "https://api.example.test/", p.alice.Chain()...))
	require.NoError(t, err)
	st := m.ReloadStatus().DenyListURL
	require.NotNil(t, st)
	assert.Equal(t, uint64(1), st.Generation)
	assert.Equal(t, []string{d.URL + "/deny.txt"}, st.Sources)

	d.serve(http.StatusOK, "sha256 "+Fingerprint(p.alice.Certificate)+"\n")
	require.NoError(t, m.refreshDenyList(context.Background()))
	_, err = m.Authenticate(mtlstest.NewRequest(http.MethodGet, "https://api.example.test/", p.alice.Chain()...))
	require.ErrorIs(t, err, ErrRevoked)

	for _, bad := range []struct {
		status int
		body   string
	}{
		{http.StatusInternalServerError, ""},
		{http.StatusOK, "garbage\n"},
		{http.StatusOK, ""},                                             // a list is never empty: an empty body is cut short
		{http.StatusOK, "sha256 " + Fingerprint(p.issuing.Certificate)}, // no final newline: cut short
	} {
		d.serve(bad.status, bad.body)
		require.Error(t, m.refreshDenyList(context.Background()))
		_, err = m.Authenticate(mtlstest.NewRequest(http.MethodGet, "https://api.example.test/", p.alice.Chain()...))
		require.ErrorIs(t, err, ErrRevoked, "a failed fetch keeps the last good list")
		st = m.ReloadStatus().DenyListURL
		assert.Equal(t, uint64(2), st.Generation)
		assert.Contains(t, st.LastError, "mtls: deny list "+d.URL)
	}

	d.serve(http.StatusOK, "# none\n")
	require.NoError(t, m.refreshDenyList(context.Background()), "a list without entries is a comment")
	_, err = m.Authenticate(mtlstest.NewRequest(http.MethodGet, "https://api.example.test/", p.alice.Chain()...))
	require.NoError(t, err)

	d.serve(http.StatusServiceUnavailable, "")
	_, err = New(cfg(d.URL))
	var ce *ConfigError
	require.ErrorAs(t, err, &ce, "no deny list, no start")
	assert.Equal(t, "Revocation.DenyListURL", ce.Field)
	_, err = New(cfg("http://127.0.0.1/deny.txt"))
	require.ErrorAs(t, err, &ce)
	assert.Equal(t, "Revocation.DenyListURL", ce.Field)
}

// TestDenyListURLHTTPSOnly: with a client that follows redirects, a redirect to a plain http URL
// is not followed, and the list in force stays; the URL's secrets (user information, query) show
// nowhere in the status, the log or the error.
func TestDenyListURLHTTPSOnly(t *testing.T) {
	p := newPKI(t)
	d := newDenyServer(t)
	var plainHits atomic.Int32
	plain := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		plainHits.Add(1)
		_, _ = w.Write([]byte("# none\n"))
	}))
	t.Cleanup(plain.Close)
	d.serve(http.StatusOK, "sha256 "+Fingerprint(p.alice.Certificate)+"\n")
	var logs bytes.Buffer
	secret := strings.Replace(d.URL, "https://", "https://user:hunter2@", 1) + "/deny.txt?token=s3cret#frag"
	m, err := New(Config{RootCAs: p.root.Pool(), Logger: slog.New(slog.NewTextHandler(&logs, nil)),
		Revocation: &RevocationConfig{DenyListURL: secret, HTTPClient: d.Client(), DenyListInterval: time.Hour}})
	require.NoError(t, err)
	t.Cleanup(func() { _ = m.Close() })
	assert.Nil(t, d.Client().CheckRedirect, "the test's client follows redirects")

	d.mu.Lock()
	d.location = plain.URL + "/deny.txt"
	d.mu.Unlock()
	err = m.refreshDenyList(context.Background())
	require.ErrorContains(t, err, "https only")
	assert.Equal(t, int32(0), plainHits.Load(), "the http URL is never asked")
	_, err = m.Authenticate(mtlstest.NewRequest(http.MethodGet, "https://api.example.test/", p.alice.Chain()...))
	require.ErrorIs(t, err, ErrRevoked, "the list in force stays")

	st := m.ReloadStatus().DenyListURL
	assert.Equal(t, []string{d.URL + "/deny.txt?token=REDACTED"}, st.Sources)
	for _, text := range []string{st.LastError, logs.String(), fmt.Sprint(st.Sources)} {
		assert.NotContains(t, text, "hunter2")
		assert.NotContains(t, text, "s3cret")
		assert.NotContains(t, text, "frag")
	}
}

// TestReloadDenyFileCutShort: a deny list file read while written in place (empty where entries
// were in force, or without its final newline) keeps the list in force; an empty file is fine
// where nothing was.
func TestReloadDenyFileCutShort(t *testing.T) {
	f := newReloadFiles(t)
	a := newTrustSet("A")
	f.writeSet(t, a)
	f.write(t, f.deny, nil)
	cfg := f.config(t)
	cfg.Revocation = &RevocationConfig{DenyListFile: f.deny}
	m, err := New(cfg)
	require.NoError(t, err, "an empty file where nothing was in force")
	entry := "sha256 " + Fingerprint(a.client.Certificate) + "\n"
	f.write(t, f.deny, []byte(entry))
	require.NoError(t, m.Reload())
	for _, cut := range []string{"", entry[:len(entry)-1], entry + "sha256 " + Fingerprint(a.ca.Certificate)[:20]} {
		f.write(t, f.deny, []byte(cut))
		err := m.Reload()
		require.Error(t, err, "%q", cut)
		assert.Contains(t, err.Error(), "Revocation.DenyListFile")
		_, err = m.Authenticate(mtlstest.NewRequest(http.MethodGet, "https://api.example.test/", a.client.Chain()...))
		require.ErrorIs(t, err, ErrRevoked, "%q keeps the list in force", cut)
	}
	f.write(t, f.deny, []byte("# none\n"))
	require.NoError(t, m.Reload())

	d := NewDenyList()
	f.write(t, f.deny, []byte(entry))
	require.NoError(t, d.LoadFile(f.deny))
	f.write(t, f.deny, nil)
	require.ErrorContains(t, d.LoadFile(f.deny), "empty")
	assert.Equal(t, 1, d.Len())
}

// TestPollSeesSameSizeChanges: a change of the same size is seen when the modification time
// does not tell it: written in place within the file system clock's resolution, or replaced by a
// file renamed over it with the old time kept.
func TestPollSeesSameSizeChanges(t *testing.T) {
	f := newReloadFiles(t)
	a, b := newTrustSet("A"), newTrustSet("B")
	f.writeSet(t, a)
	m, err := New(Config{RootCAFiles: []string{f.roots}, PolicyFiles: []string{f.policy}, ReloadInterval: time.Hour})
	require.NoError(t, err)
	t.Cleanup(func() { _ = m.Close() })
	policy := func(s *trustSet) []byte { return []byte(`{"principal": ["` + s.principal + `"]}`) }
	require.Len(t, policy(b), len(policy(a)))
	gen := func() uint64 { return m.ReloadStatus().Files.Generation }

	// In place, same time: a time that is not well before the look is hashed again.
	soon := time.Now().Add(time.Hour)
	require.NoError(t, os.Chtimes(f.policy, soon, soon))
	assert.False(t, m.poll())
	f.write(t, f.policy, policy(b))
	require.NoError(t, os.Chtimes(f.policy, soon, soon))
	assert.True(t, m.poll(), "rewritten in place with the same size and time")
	assert.Equal(t, uint64(2), gen())

	// Renamed over, the old time kept (cp -p, tar, rsync -t into a temporary file).
	old := time.Date(2020, 1, 1, 0, 0, 0, 0, time.UTC)
	require.NoError(t, os.Chtimes(f.policy, old, old))
	m.poll()
	assert.False(t, m.poll(), "hashed well after its time: not read again")
	tmp := f.policy + ".tmp"
	f.write(t, tmp, policy(a))
	require.NoError(t, os.Chtimes(tmp, old, old))
	require.NoError(t, os.Rename(tmp, f.policy))
	assert.True(t, m.poll(), "another file under the same name")
}

// TestAdvertiseCAsWithoutBaseCertificate: where the server's certificate is added after
// TLSConfig (httptest, ServeTLS with files), AdvertiseCAs warns and names nothing, and
// handshakes work; with a verifying ClientAuth and pins alone, crypto/tls gets an empty pool,
// never the system's roots.
func TestAdvertiseCAsWithoutBaseCertificate(t *testing.T) {
	p := newPKI(t)
	var logs bytes.Buffer
	m, err := New(Config{RootCAs: p.root.Pool(), Logger: slog.New(slog.NewTextHandler(&logs, nil))})
	require.NoError(t, err)
	srv := httptest.NewUnstartedServer(m.Handler(echoIdentity))
	srv.TLS = m.TLSConfig(&tls.Config{}, AdvertiseCAs())
	assert.Nil(t, srv.TLS.GetConfigForClient)
	assert.Contains(t, logs.String(), "AdvertiseCAs needs the server's certificate")
	srv.StartTLS() // adds its certificate to its own copy
	t.Cleanup(srv.Close)
	cfg := srv.Client().Transport.(*http.Transport).TLSClientConfig.Clone()
	cert := p.alice.TLSCertificate()
	cfg.Certificates = []tls.Certificate{cert}
	client := &http.Client{Transport: &http.Transport{TLSClientConfig: cfg}, Timeout: 10 * time.Second}
	defer client.CloseIdleConnections()
	res, err := client.Get(srv.URL)
	require.NoError(t, err, "the handshake works")
	_ = res.Body.Close()
	assert.Equal(t, http.StatusOK, res.StatusCode)

	pinned, err := New(Config{PinnedSHA256: []string{Fingerprint(p.alice.Certificate)}})
	require.NoError(t, err)
	serverCert := mtlstest.NewRootCA("Server CA").NewServer("127.0.0.1").TLSCertificate()
	for _, auth := range []tls.ClientAuthType{tls.VerifyClientCertIfGiven, tls.RequireAndVerifyClientCert} {
		base := &tls.Config{Certificates: []tls.Certificate{serverCert}, ClientAuth: auth}
		c, err := pinned.TLSConfig(base, AdvertiseCAs()).GetConfigForClient(&tls.ClientHelloInfo{})
		require.NoError(t, err)
		require.NotNil(t, c.ClientCAs, "%v: a nil pool means the system's roots", auth)
		assert.Empty(t, c.ClientCAs.Subjects()) //nolint:staticcheck // Subjects of a pool built here
	}
}

// TestAdvertiseCAsFollowsReload: over real handshakes, the certificate request names the root
// in force, before and after a reload, and the base's GetConfigForClient is still asked.
func TestAdvertiseCAsFollowsReload(t *testing.T) {
	f := newReloadFiles(t)
	a, b := newTrustSet("A"), newTrustSet("B")
	f.write(t, f.roots, a.ca.CertPEM())
	m, err := New(Config{RootCAFiles: []string{f.roots}})
	require.NoError(t, err)
	serverCA := mtlstest.NewRootCA("Server CA")
	var asked atomic.Int32
	base := &tls.Config{
		Certificates: []tls.Certificate{serverCA.NewServer("127.0.0.1").TLSCertificate()},
		GetConfigForClient: func(*tls.ClientHelloInfo) (*tls.Config, error) {
			asked.Add(1)
			return nil, nil
		},
	}
	srv := httptest.NewUnstartedServer(m.Handler(echoIdentity))
	srv.TLS = m.TLSConfig(base, AdvertiseCAs())
	srv.StartTLS()
	t.Cleanup(srv.Close)

	call := func(s *trustSet) ([][]byte, int) {
		var seen [][]byte
		cfg := &tls.Config{RootCAs: serverCA.Pool(), MinVersion: tls.VersionTLS12,
			GetClientCertificate: func(cri *tls.CertificateRequestInfo) (*tls.Certificate, error) {
				seen = cri.AcceptableCAs
				c := s.client.TLSCertificate()
				return &c, nil
			}}
		client := &http.Client{Transport: &http.Transport{TLSClientConfig: cfg}, Timeout: 10 * time.Second}
		defer client.CloseIdleConnections()
		res, err := client.Get(srv.URL)
		require.NoError(t, err)
		_ = res.Body.Close()
		return seen, res.StatusCode
	}
	names, status := call(a)
	assert.Equal(t, [][]byte{a.ca.Certificate.RawSubject}, names)
	assert.Equal(t, http.StatusOK, status)

	f.write(t, f.roots, b.ca.CertPEM())
	require.NoError(t, m.Reload())
	names, status = call(b)
	assert.Equal(t, [][]byte{b.ca.Certificate.RawSubject}, names)
	assert.Equal(t, http.StatusOK, status)
	assert.Equal(t, int32(2), asked.Load(), "the base's GetConfigForClient is asked first")

	pinned, err := New(Config{RootCAs: a.ca.Pool(), PinnedSHA256: []string{Fingerprint(b.client.Certificate)}})
	require.NoError(t, err)
	cfg, err := pinned.TLSConfig(&tls.Config{Certificates: base.Certificates}, AdvertiseCAs()).GetConfigForClient(&tls.ClientHelloInfo{})
	require.NoError(t, err)
	assert.Nil(t, cfg.ClientCAs, "with pins nothing is advertised")
	assert.Equal(t, tls.RequestClientCert, cfg.ClientAuth, "the handshake still verifies nothing")
}

// routeFiles is a middleware trusting trust set A from a roots file and polling (by hand: the
// interval is an hour), with route policy files of its own.
type routeFiles struct {
	*reloadFiles
	a                *trustSet
	alice, bob       *mtlstest.Leaf
	route, blocklist string
	m                *Middleware
}

func newRouteFiles(t *testing.T) *routeFiles {
	t.Helper()
	f := &routeFiles{reloadFiles: newReloadFiles(t), a: newTrustSet("A")}
	f.alice, f.bob = f.a.ca.NewClient("alice"), f.a.ca.NewClient("bob")
	f.route, f.blocklist = filepath.Join(f.dir, "route.json"), filepath.Join(f.dir, "blocklist.json")
	f.write(t, f.roots, f.a.ca.CertPEM())
	f.write(t, f.route, []byte(`{"subject": {"cn": ["alice"]}}`))
	f.write(t, f.blocklist, []byte(`{"subject": {"cn": ["mallory"]}}`))
	var err error
	f.m, err = New(Config{RootCAFiles: []string{f.roots}, ReloadInterval: time.Hour})
	require.NoError(t, err)
	t.Cleanup(func() { _ = f.m.Close() })
	return f
}

// status serves a request of leaf through h.
func status(h http.Handler, leaf *mtlstest.Leaf) int {
	w := httptest.NewRecorder()
	h.ServeHTTP(w, mtlstest.NewRequest(http.MethodGet, "https://api.example.test/", leaf.Chain()...))
	return w.Code
}

// TestRoutePolicyFilesReload: a policy read by LoadPolicyFile and given to Require, alone or
// inside All, Any and Not, follows the middleware's Reload and polling, swapped in with the rest
// of the files or, if one of them is bad, kept with them all as they were.
func TestRoutePolicyFilesReload(t *testing.T) {
	for _, tc := range []struct {
		name   string
		policy func(f *routeFiles) Policy
	}{
		{"alone", func(f *routeFiles) Policy { return Must(LoadPolicyFile(f.route)) }},
		{"nested", func(f *routeFiles) Policy {
			return All(Not(Must(LoadPolicyFile(f.blocklist))), Any(Must(LoadPolicyFile(f.route)), Must(RequirePrincipals("nobody"))))
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newRouteFiles(t)
			m := f.m
			h := m.Handler(m.Require(tc.policy(f))(echoIdentity))
			assert.Contains(t, m.ReloadStatus().Files.Sources, f.route)
			assert.Equal(t, http.StatusOK, status(h, f.alice))
			assert.Equal(t, http.StatusForbidden, status(h, f.bob))

			f.write(t, f.route, []byte(`{"subject": {"cn": ["bob"]}}`))
			assert.Equal(t, http.StatusOK, status(h, f.alice), "not before the reload")
			require.NoError(t, m.Reload())
			assert.Equal(t, http.StatusForbidden, status(h, f.alice))
			assert.Equal(t, http.StatusOK, status(h, f.bob))

			// A bad route file keeps everything: the route's policy, and the new roots.
			b := newTrustSet("B")
			f.write(t, f.roots, b.ca.CertPEM())
			f.write(t, f.route, []byte(`{"subject": {}}`))
			err := m.Reload()
			var ce *ConfigError
			require.ErrorAs(t, err, &ce)
			assert.Equal(t, "route policy", ce.Field)
			assert.ErrorContains(t, err, f.route)
			assert.Contains(t, m.ReloadStatus().Files.LastError, f.route)
			assert.Equal(t, http.StatusOK, status(h, f.bob), "the last good files serve on")
			assert.Equal(t, http.StatusForbidden, status(h, f.alice))

			// A bad roots file keeps the route's new policy out too.
			f.write(t, f.roots, []byte("garbage"))
			f.write(t, f.route, []byte(`{"subject": {"cn": ["alice"]}}`))
			require.ErrorContains(t, m.Reload(), "RootCAFiles[0]")
			assert.Equal(t, http.StatusOK, status(h, f.bob))
			assert.Equal(t, http.StatusForbidden, status(h, f.alice))

			// Polling: repaired, the change is seen and swapped in.
			f.write(t, f.roots, f.a.ca.CertPEM())
			assert.True(t, m.poll())
			assert.Empty(t, m.ReloadStatus().Files.LastError)
			assert.Equal(t, http.StatusOK, status(h, f.alice))
			assert.Equal(t, http.StatusForbidden, status(h, f.bob))
			f.write(t, f.route, []byte(`{"subject": {"cn": ["bob"]}}`))
			assert.True(t, m.poll())
			assert.Equal(t, http.StatusOK, status(h, f.bob))
			assert.False(t, m.poll(), "nothing new")
		})
	}
}

// TestRoutePolicyFilesPerMiddleware: one policy file serves the routes of two middlewares, and
// each reloads it on its own.
func TestRoutePolicyFilesPerMiddleware(t *testing.T) {
	f := newRouteFiles(t)
	other, err := New(Config{RootCAFiles: []string{f.roots}})
	require.NoError(t, err)
	p := Must(LoadPolicyFile(f.route))
	h1 := f.m.Handler(f.m.Require(p)(echoIdentity))
	h2 := other.Handler(other.Require(p)(echoIdentity))
	f.write(t, f.route, []byte(`{"subject": {"cn": ["bob"]}}`))
	require.NoError(t, f.m.Reload())
	assert.Equal(t, http.StatusOK, status(h1, f.bob))
	assert.Equal(t, http.StatusForbidden, status(h2, f.bob), "the other middleware did not reload")
	assert.Equal(t, http.StatusOK, status(h2, f.alice))
	require.NoError(t, other.Reload())
	assert.Equal(t, http.StatusOK, status(h2, f.bob))
	assert.NoError(t, p.Check(NewIdentity(f.alice.VerifiedChain())), "the policy itself is as it was read")
}

// TestRoutePolicyFilesOneGeneration: a request is judged by the route policy loaded with the
// trust that verified it, whatever reload happens between its handler and its route.
func TestRoutePolicyFilesOneGeneration(t *testing.T) {
	f := newRouteFiles(t)
	m := f.m
	reloadFirst := func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			f.write(t, f.route, []byte(`{"subject": {"cn": ["bob"]}}`))
			require.NoError(t, m.Reload())
			next.ServeHTTP(w, r)
		})
	}
	h := m.Handler(reloadFirst(m.Require(Must(LoadPolicyFile(f.route)))(echoIdentity)))
	assert.Equal(t, http.StatusOK, status(h, f.alice), "verified before the reload: judged by alice's policy")
	assert.Equal(t, http.StatusForbidden, status(h, f.alice), "verified after it")
}

// TestRoutePolicyFilesRegisteredLate: a route built after a file changed, or after a reload,
// judges by what is in force, and polling sees a change made between LoadPolicyFile and
// Require.
func TestRoutePolicyFilesRegisteredLate(t *testing.T) {
	f := newRouteFiles(t)
	m := f.m
	p1 := Must(LoadPolicyFile(f.route)) // alice
	f.write(t, f.route, []byte(`{"subject": {"cn": ["bob"]}}`))
	h1 := m.Handler(m.Require(p1)(echoIdentity))
	assert.Equal(t, http.StatusOK, status(h1, f.alice), "as read")
	assert.True(t, m.poll(), "changed since it was read")
	assert.Equal(t, http.StatusOK, status(h1, f.bob))
	assert.False(t, m.poll())

	f.write(t, f.route, []byte(`{"subject": {"cn": ["carol"]}}`))
	p2 := Must(LoadPolicyFile(f.route)) // carol, not yet reloaded for h1
	h2 := m.Handler(m.Require(p2)(echoIdentity))
	assert.Equal(t, http.StatusOK, status(h1, f.bob))
	assert.Equal(t, http.StatusForbidden, status(h2, f.bob))
	assert.True(t, m.poll(), "read otherwise than it was marked")
	assert.Equal(t, http.StatusForbidden, status(h1, f.bob), "both follow the file now")
	assert.False(t, m.poll())
}

// TestRoutePolicyFilesShadowAndClock: a route's Shadow follows reloads like Require, and a
// reloaded document's min_validity runs on Config.Now.
func TestRoutePolicyFilesShadowAndClock(t *testing.T) {
	f := newRouteFiles(t)
	now := time.Now()
	var results []ShadowResult
	m, err := New(Config{RootCAFiles: []string{f.roots}, Now: func() time.Time { return now },
		ShadowPolicy: Must(RequirePrincipals("*")), // OnShadow needs a ShadowPolicy
		OnShadow:     func(_ *http.Request, res ShadowResult) { results = append(results, res) }})
	require.NoError(t, err)
	validity := filepath.Join(f.dir, "validity.json")
	f.write(t, validity, []byte(`{"subject": {"cn": ["alice"]}}`))
	h := m.Handler(m.Shadow(Must(LoadPolicyFile(f.route)))(m.Require(Must(LoadPolicyFile(validity)))(echoIdentity)))
	last := func() ShadowResult { return results[len(results)-1] }
	assert.Equal(t, http.StatusOK, status(h, f.alice))
	assert.True(t, last().WouldAllow())
	f.write(t, f.route, []byte(`{"subject": {"cn": ["bob"]}}`))
	require.NoError(t, m.Reload())
	assert.Equal(t, http.StatusOK, status(h, f.alice))
	assert.False(t, last().WouldAllow(), "the shadow policy reloaded")

	f.write(t, validity, []byte(`{"min_validity": "1h"}`))
	require.NoError(t, m.Reload())
	assert.Equal(t, http.StatusOK, status(h, f.alice))
	now = f.alice.Certificate.NotAfter.Add(-time.Minute) // still valid, for less than an hour
	assert.Equal(t, http.StatusForbidden, status(h, f.alice), "min_validity on Config.Now")
}

// TestRoutePolicyFilesUnderLoad: requests racing reloads that swap roots and a route's policy
// file between two sets, and routes built meanwhile, never see the roots of one set with the
// route policy of the other: the client of the set in force passes, the other is untrusted,
// never denied by the route.
func TestRoutePolicyFilesUnderLoad(t *testing.T) {
	f := newReloadFiles(t)
	a, b := newTrustSet("A"), newTrustSet("B")
	route := filepath.Join(f.dir, "route.json")
	write := func(s *trustSet) {
		f.write(t, f.roots, s.ca.CertPEM())
		f.write(t, route, []byte(`{"subject": {"cn": ["`+s.client.Certificate.Subject.CommonName+`"]}}`))
	}
	write(a)
	var denied atomic.Int64
	m, err := New(Config{RootCAFiles: []string{f.roots}, ErrorHandler: func(w http.ResponseWriter, r *http.Request, err error) {
		if errors.Is(err, ErrDenied) {
			denied.Add(1)
		}
		WriteError(w, r, err)
	}})
	require.NoError(t, err)
	h := m.Handler(m.Require(Any(Must(LoadPolicyFile(route))))(noop))

	const workers, requests, reloads = 4, 100, 20
	var wg sync.WaitGroup
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range requests {
				s := a
				if (w+i)%2 == 1 {
					s = b
				}
				h.ServeHTTP(httptest.NewRecorder(), mtlstest.NewRequest(http.MethodGet, "https://api.example.test/", s.client.Chain()...))
				if i%25 == 0 {
					if p, err := LoadPolicyFile(route); err == nil { // it may catch a write half done
						_ = m.Require(p) // a route built while serving
					}
				}
			}
		}()
	}
	for i := range reloads {
		s := b
		if i%2 == 1 {
			s = a
		}
		write(s)
		require.NoError(t, m.Reload())
	}
	wg.Wait()
	assert.Zero(t, denied.Load(), "a request was judged by the route policy of another generation")
}
