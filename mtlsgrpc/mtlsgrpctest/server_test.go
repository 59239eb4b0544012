package mtlsgrpctest_test

import (
	"context"
	"testing"
	"time"

	"github.com/certgate/mtls/mtlsgrpc/mtlsgrpctest"
	"github.com/certgate/mtls/mtlstest"
	"github.com/stretchr/testify/require"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
)

// TestBare: a server without a middleware answers every client, with no identity, over both
// transports.
func TestBare(t *testing.T) {
	client := mtlstest.NewRootCA("Any CA").NewClient("alice")
	for _, serveHTTP := range []bool{false, true} {
		srv := mtlsgrpctest.Start(t, mtlsgrpctest.Config{ServeHTTP: serveHTTP})
		require.Nil(t, srv.Interceptor)
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		for _, leaf := range []*mtlstest.Leaf{nil, client} {
			conn := srv.Dial(t, leaf)
			answer, err := mtlsgrpctest.Say(ctx, conn, "hi")
			require.NoError(t, err)
			require.Equal(t, "-:hi", answer)
			answers, err := mtlsgrpctest.Chat(ctx, conn, []string{"a", "b"})
			require.NoError(t, err)
			require.Equal(t, []string{"-:a", "-:b"}, answers)
			res, err := healthpb.NewHealthClient(conn).Check(ctx, &healthpb.HealthCheckRequest{})
			require.NoError(t, err)
			require.Equal(t, healthpb.HealthCheckResponse_SERVING, res.GetStatus())
		}
		seen := srv.Echo.Seen()
		require.Len(t, seen, 4)
		require.Equal(t, mtlsgrpctest.SayMethod, seen[0].Method)
		require.Equal(t, mtlsgrpctest.ChatMethod, seen[1].Method)
		srv.Echo.Reset()
		require.Empty(t, srv.Echo.Seen())
	}
}
