package mtlsgrpc_test

import (
	"context"
	"io"
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/certgate/mtls"
	"github.com/certgate/mtls/mtlsgrpc"
	"github.com/certgate/mtls/mtlsgrpc/mtlsgrpctest"
	"github.com/certgate/mtls/mtlstest"
	"github.com/stretchr/testify/require"
	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// The kit of this package's tests: a test PKI, a middleware recording its events, and the parts
// of a refusal's status.

// pki is a test PKI: root -> issuing intermediate -> clients, plus an unrelated CA.
type pki struct {
	root, issuing, other *mtlstest.CA
	alice, bob           *mtlstest.Leaf
}

func newPKI(t testing.TB) *pki {
	t.Helper()
	root := mtlstest.NewRootCA("Test Root CA")
	issuing := root.NewIntermediate("Test Issuing CA")
	return &pki{
		root:    root,
		issuing: issuing,
		other:   mtlstest.NewRootCA("Other Root CA"),
		alice:   issuing.NewClient("alice", mtlstest.WithURIs("spiffe://example.test/alice")),
		bob:     issuing.NewClient("bob", mtlstest.WithURIs("spiffe://example.test/bob")),
	}
}

// events records the events of a middleware.
type events struct {
	mu   sync.Mutex
	list []mtls.Event
}

func (e *events) record(_ context.Context, ev mtls.Event) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if len(e.list) < 1<<14 {
		e.list = append(e.list, ev)
	}
}

func (e *events) take() []mtls.Event {
	e.mu.Lock()
	defer e.mu.Unlock()
	out := e.list
	e.list = nil
	return out
}

// quiet is a logger that drops everything: refusals are expected here.
var quiet = slog.New(slog.NewTextHandler(io.Discard, nil))

// newMiddleware returns a middleware on cfg, trusting p's root unless cfg names a trust, that
// records its events in ev (if not nil); the test fails if cfg does not hold.
func newMiddleware(t testing.TB, p *pki, cfg mtls.Config, ev *events) *mtls.Middleware {
	t.Helper()
	if cfg.RootCAs == nil && cfg.RootCAFiles == nil && cfg.PinnedSHA256 == nil {
		cfg.RootCAs = p.root.Pool()
	}
	if ev != nil {
		cfg.OnDecision = ev.record
	}
	if cfg.Logger == nil {
		cfg.Logger = quiet
	}
	m, err := mtls.New(cfg)
	require.NoError(t, err)
	t.Cleanup(func() { _ = m.Close() })
	return m
}

// refusal is what a client learns of a refused call.
type refusal struct {
	code    codes.Code
	message string
	info    *errdetails.ErrorInfo
	retry   *errdetails.RetryInfo
	others  int // details of other types
}

func refusalOf(t testing.TB, err error) refusal {
	t.Helper()
	require.Error(t, err)
	st, ok := status.FromError(err)
	require.True(t, ok, "not a status: %v", err)
	r := refusal{code: st.Code(), message: st.Message()}
	for _, d := range st.Details() {
		switch d := d.(type) {
		case *errdetails.ErrorInfo:
			require.Nil(t, r.info, "two ErrorInfo details")
			r.info = d
		case *errdetails.RetryInfo:
			require.Nil(t, r.retry, "two RetryInfo details")
			r.retry = d
		default:
			r.others++
		}
	}
	return r
}

// requireRefused checks that err is the refusal of reason, with its code and ErrorInfo, and
// nothing more said.
func requireRefused(t testing.TB, err error, reason string) refusal {
	t.Helper()
	r := refusalOf(t, err)
	require.Equal(t, mtlsgrpc.Code(reason), r.code, "code of %s (%v)", reason, err)
	require.Equal(t, "mtls: "+reason, r.message)
	require.NotNil(t, r.info)
	require.Equal(t, mtlsgrpc.Domain, r.info.GetDomain())
	require.Equal(t, upper(reason), r.info.GetReason())
	require.Equal(t, map[string]string{"reason": reason}, r.info.GetMetadata())
	require.Zero(t, r.others)
	return r
}

func upper(s string) string {
	b := []byte(s)
	for i, c := range b {
		if 'a' <= c && c <= 'z' {
			b[i] = c - 'a' + 'A'
		}
	}
	return string(b)
}

// ctx is the context of one test's calls: bounded, so that no call can hang a test.
func ctx(t testing.TB) context.Context {
	c, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	return c
}

// start starts a server deciding with m and options.
func start(t testing.TB, m *mtls.Middleware, opts ...mtlsgrpc.Option) *mtlsgrpctest.Server {
	t.Helper()
	return mtlsgrpctest.Start(t, mtlsgrpctest.Config{Middleware: m, Options: opts})
}

// grpcConn is a client connection.
type grpcConn = grpc.ClientConn
