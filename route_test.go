package mtls

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"
	"weak"

	"github.com/certgate/mtls/mtlstest"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// results lists the results and steps of the recorded events.
func (e *events) results() []string {
	e.mu.Lock()
	defer e.mu.Unlock()
	out := []string{}
	for _, ev := range e.evs {
		out = append(out, string(ev.Result)+"/"+ev.Step)
	}
	return out
}

func (e *events) reset() {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.evs = nil
}

func aliceRequest(p *pki) *http.Request {
	return mtlstest.NewRequest(http.MethodGet, "https://api.example.test/", p.alice.Chain()...)
}

// TestRouteOneEventBelowTimeoutHandler: a Require below http.TimeoutHandler that refuses after
// the timeout answered the request does not report it a second time.
func TestRouteOneEventBelowTimeoutHandler(t *testing.T) {
	p := newPKI(t)
	var evs events
	m, err := New(Config{RootCAs: p.root.Pool(), Intermediates: p.issuing.Pool(), OnDecision: evs.record})
	require.NoError(t, err)
	release, done := make(chan struct{}), make(chan struct{})
	gate := func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			defer close(done)
			<-release // until the timeout answered
			next.ServeHTTP(w, r)
		})
	}
	bob := must(RequireSubject(Attributes{"CN": {"bob"}}))
	h := m.Handler(http.TimeoutHandler(gate(m.Require(bob)(echoIdentity)), time.Nanosecond, "timeout"))
	w := httptest.NewRecorder()
	h.ServeHTTP(w, aliceRequest(p))
	close(release)
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("the route did not run")
	}
	assert.Equal(t, http.StatusServiceUnavailable, w.Code)
	assert.Equal(t, []string{"accepted/"}, evs.results(), "one request, one event")
}

// TestRouteOtherMiddlewareBetween: the handler of another middleware between a middleware's
// handler and its Require hides neither its acceptance nor the state that verified the request.
func TestRouteOtherMiddlewareBetween(t *testing.T) {
	f := newRouteFiles(t)
	var e1, e2 events
	m1, err := New(Config{RootCAFiles: []string{f.roots}, OnDecision: e1.record})
	require.NoError(t, err)
	m2, err := New(Config{RootCAFiles: []string{f.roots}, OnDecision: e2.record})
	require.NoError(t, err)
	_ = m2.Require(must(RequirePrincipals("*"))) // m2's acceptances wait for its routes too
	reloadFirst := func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			f.write(t, f.route, []byte(`{"subject": {"cn": ["bob"]}}`))
			require.NoError(t, m1.Reload())
			next.ServeHTTP(w, r)
		})
	}
	h := m1.Handler(m2.Handler(reloadFirst(m1.Require(Must(LoadPolicyFile(f.route)))(echoIdentity))))
	assert.Equal(t, http.StatusOK, status(h, f.alice), "verified by m1 before the reload: judged by alice's policy")
	assert.Equal(t, []string{"accepted/"}, e1.results())
	assert.Equal(t, []string{"accepted/"}, e2.results())
}

// TestRouteBuiltDuringRequest: a Require built while a request is served (inside a handler)
// does not report that request twice.
func TestRouteBuiltDuringRequest(t *testing.T) {
	p := newPKI(t)
	var evs events
	m, err := New(Config{RootCAs: p.root.Pool(), Intermediates: p.issuing.Pool(), OnDecision: evs.record})
	require.NoError(t, err)
	bob := must(RequireSubject(Attributes{"CN": {"bob"}}))
	h := m.Handler(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		m.Require(bob)(echoIdentity).ServeHTTP(w, r)
	}))
	for i, want := range []string{"accepted/", "refused/policy"} {
		evs.reset()
		w := httptest.NewRecorder()
		h.ServeHTTP(w, aliceRequest(p))
		assert.Equal(t, http.StatusForbidden, w.Code)
		assert.Equal(t, []string{want}, evs.results(), "request %d: one event", i)
	}
}

// TestRouteHoldsNoState: after a reload, a route with a policy file holds nothing of the
// replaced state (its trust and cached outcomes), even before it is hit again.
func TestRouteHoldsNoState(t *testing.T) {
	f := newRouteFiles(t)
	m := f.m
	h := m.Handler(m.Require(Must(LoadPolicyFile(f.route)))(echoIdentity))
	require.Equal(t, http.StatusOK, status(h, f.alice))
	old := weak.Make(m.state.Load())
	require.NoError(t, m.Reload())
	for i := 0; i < 10 && old.Value() != nil; i++ {
		runtime.GC()
	}
	assert.Nil(t, old.Value(), "the replaced state is not retained")
	assert.Equal(t, http.StatusOK, status(h, f.alice))
}

// TestRouteFilesRegisteredOnce: policies of one path register it once, however often they are
// built, and load it once per reload; distinct paths are bounded.
func TestRouteFilesRegisteredOnce(t *testing.T) {
	f := newRouteFiles(t)
	m := f.m
	for i := 0; i < 1000; i++ { // a Require built per request
		_ = m.Require(Must(LoadPolicyFile(f.route)))
	}
	assert.Equal(t, []string{f.route}, m.reload.routeFiles)
	sources := m.ReloadStatus().Files.Sources
	assert.Equal(t, 1, countOf(sources, f.route), "listed once in %v", sources)
	require.NoError(t, m.Reload())
	assert.Len(t, m.state.Load().routeFiles, 1)

	dir := t.TempDir()
	m2, err := New(Config{RootCAFiles: []string{f.roots}})
	require.NoError(t, err)
	path := func(i int) string { return filepath.Join(dir, fmt.Sprintf("r%d.json", i)) }
	for i := range maxRouteFiles + 1 {
		require.NoError(t, os.WriteFile(path(i), []byte(`{"subject": {"cn": ["alice"]}}`), 0o600))
	}
	for i := range maxRouteFiles {
		_ = m2.Require(Must(LoadPolicyFile(path(i))))
	}
	_ = m2.Require(Must(LoadPolicyFile(path(0)))) // registered already
	assert.Len(t, m2.ReloadStatus().Files.Sources, 1+maxRouteFiles)
	assert.PanicsWithValue(t, fmt.Sprintf("mtls: more than %d policy files registered for reloading by Require and Shadow", maxRouteFiles),
		func() { _ = m2.Require(Must(LoadPolicyFile(path(maxRouteFiles)))) })
}

func countOf(list []string, s string) int {
	n := 0
	for _, v := range list {
		if v == s {
			n++
		}
	}
	return n
}

// TestRouteAllocs: a route policy costs the hit path no allocation, with an observer, with a
// policy file, and on the middleware's other routes.
func TestRouteAllocs(t *testing.T) {
	p := newPKI(t)
	route := filepath.Join(t.TempDir(), "r.json")
	require.NoError(t, os.WriteFile(route, []byte(`{"subject": {"cn": ["alice"]}}`), 0o600))
	alice := must(RequireSubject(Attributes{"CN": {"alice"}}))
	hook := func(context.Context, Event) {}
	for _, tc := range []struct {
		name  string
		hook  bool
		build func(m *Middleware) http.Handler
	}{
		{"Handler", false, func(m *Middleware) http.Handler { return m.Handler(noop) }},
		{"Handler, observer", true, func(m *Middleware) http.Handler { return m.Handler(noop) }},
		{"Handler, observer, Require elsewhere", true, func(m *Middleware) http.Handler {
			_ = m.Require(alice)
			return m.Handler(noop)
		}},
		{"Handler+Require", false, func(m *Middleware) http.Handler { return m.Handler(m.Require(alice)(noop)) }},
		{"Handler+Require, observer", true, func(m *Middleware) http.Handler { return m.Handler(m.Require(alice)(noop)) }},
		{"Handler+Require(file)", false, func(m *Middleware) http.Handler {
			return m.Handler(m.Require(Must(LoadPolicyFile(route)))(noop))
		}},
		{"Handler+Require(file), observer", true, func(m *Middleware) http.Handler {
			return m.Handler(m.Require(Must(LoadPolicyFile(route)))(noop))
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := Config{RootCAs: p.root.Pool(), Intermediates: p.issuing.Pool()}
			if tc.hook {
				cfg.OnDecision = hook
			}
			m, err := New(cfg)
			require.NoError(t, err)
			h := tc.build(m)
			r := aliceRequest(p)
			w := &discardWriter{h: http.Header{}}
			h.ServeHTTP(w, r)
			assert.LessOrEqual(t, testing.AllocsPerRun(200, func() { h.ServeHTTP(w, r) }), 2.0,
				"the request copy and its context value")
		})
	}
}

// TestRouteAcceptanceWhenFinal: with a route policy on the middleware, an acceptance is reported
// as soon as the next handler writes the response header (a stream is not reported when it
// ends), through a writer that still flushes and hijacks; without one, before next runs.
func TestRouteAcceptanceWhenFinal(t *testing.T) {
	p := newPKI(t)
	var evs events
	m, err := New(Config{RootCAs: p.root.Pool(), Intermediates: p.issuing.Pool(), OnDecision: evs.record})
	require.NoError(t, err)
	var seen [][]string
	note := func() { seen = append(seen, evs.results()) }
	stream := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		note()
		w.Header().Set("Content-Type", "text/event-stream")
		w.WriteHeader(http.StatusOK)
		note()
		_, ok := w.(http.Flusher)
		assert.True(t, ok, "a Flusher")
		require.NoError(t, http.NewResponseController(w).Flush())
	})
	h := m.Handler(stream)

	w := httptest.NewRecorder()
	h.ServeHTTP(w, aliceRequest(p))
	assert.Equal(t, [][]string{{"accepted/"}, {"accepted/"}}, seen, "no route policy: before next runs")

	_ = m.Require(must(RequirePrincipals("*"))) // a route elsewhere
	for _, tc := range []struct {
		name  string
		write func(w http.ResponseWriter)
	}{
		{"WriteHeader", func(w http.ResponseWriter) { w.WriteHeader(http.StatusOK) }},
		{"Write", func(w http.ResponseWriter) { _, _ = w.Write([]byte("x")) }},
		{"Flush", func(w http.ResponseWriter) { w.(http.Flusher).Flush() }},
		{"ResponseController Flush", func(w http.ResponseWriter) { _ = http.NewResponseController(w).Flush() }},
		{"io.Copy", func(w http.ResponseWriter) {
			_, _ = io.Copy(w, strings.NewReader("body")) // the recorder refuses a body after a 103
		}},
		{"WriteString", func(w http.ResponseWriter) { _, _ = io.WriteString(w, "body") }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			evs.reset()
			seen = nil
			h := m.Handler(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				w.WriteHeader(http.StatusEarlyHints) // interim: not the final header
				note()
				tc.write(w)
				note()
			}))
			w := httptest.NewRecorder()
			h.ServeHTTP(w, aliceRequest(p))
			assert.Equal(t, [][]string{{}, {"accepted/"}}, seen)
			assert.Equal(t, []string{"accepted/"}, evs.results())
		})
	}
	evs.reset()
	seen = nil
	w = httptest.NewRecorder()
	m.Handler(stream).ServeHTTP(w, aliceRequest(p))
	assert.Equal(t, [][]string{{}, {"accepted/"}}, seen)
	assert.True(t, w.Flushed)
	assert.True(t, slices.Equal([]string{"accepted/"}, evs.results()))
}

// The writer next gets while its acceptance waits has the optional interfaces of the writer below,
// and only those: a handler's type assertions answer as they would without a route policy.
func TestRouteWriterShapes(t *testing.T) {
	type ifaces struct{ flusher, hijacker, readerFrom, pusher, notifier bool }
	of := func(w http.ResponseWriter) ifaces {
		var got ifaces
		_, got.flusher = w.(http.Flusher)
		_, got.hijacker = w.(http.Hijacker)
		_, got.readerFrom = w.(io.ReaderFrom)
		_, got.pusher = w.(http.Pusher)
		_, got.notifier = w.(http.CloseNotifier) //nolint:staticcheck // what is checked
		return got
	}
	for _, tt := range []struct {
		name string
		w    http.ResponseWriter
	}{
		{"HTTP/1", http1Like{httptest.NewRecorder()}},
		{"HTTP/2", http2Like{httptest.NewRecorder()}},
		{"recorder (flushes only)", httptest.NewRecorder()},
		{"plain", plainWriter{httptest.NewRecorder()}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			pw := &pendingWriter{ResponseWriter: tt.w, pd: &pending{}}
			pw.pd.done.Store(true)
			assert.Equal(t, of(tt.w), of(pw.shaped()))
		})
	}
}

type plainWriter struct{ w http.ResponseWriter }

func (p plainWriter) Header() http.Header         { return p.w.Header() }
func (p plainWriter) Write(b []byte) (int, error) { return p.w.Write(b) }
func (p plainWriter) WriteHeader(code int)        { p.w.WriteHeader(code) }

type http1Like struct{ *httptest.ResponseRecorder }

func (http1Like) Hijack() (net.Conn, *bufio.ReadWriter, error) { return nil, nil, http.ErrNotSupported }
func (h http1Like) ReadFrom(r io.Reader) (int64, error)        { return io.Copy(h.ResponseRecorder, r) }
func (http1Like) CloseNotify() <-chan bool                     { return nil }

type http2Like struct{ *httptest.ResponseRecorder }

func (http2Like) Push(string, *http.PushOptions) error { return http.ErrNotSupported }
func (http2Like) CloseNotify() <-chan bool             { return nil }
