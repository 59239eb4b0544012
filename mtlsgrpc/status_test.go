package mtlsgrpc_test

import (
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/certgate/mtls"
	"github.com/certgate/mtls/mtlsgrpc"
	"github.com/stretchr/testify/require"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// TestStatusTable: every sentinel's refusal maps to its code, with an ErrorInfo naming its
// reason code and nothing of its detail or cause; the 429s carry a RetryInfo.
func TestStatusTable(t *testing.T) {
	const secret = "leaf CN=mallory issued by Evil CA"
	cases := []struct {
		kind   error
		reason string
		code   codes.Code
	}{
		{mtls.ErrNoCertificate, mtls.ReasonCertificateRequired, codes.Unauthenticated},
		{mtls.ErrUntrusted, mtls.ReasonCertificateUntrusted, codes.Unauthenticated},
		{mtls.ErrExpired, mtls.ReasonCertificateExpired, codes.Unauthenticated},
		{mtls.ErrNotYetValid, mtls.ReasonCertificateNotYet, codes.Unauthenticated},
		{mtls.ErrWrongUsage, mtls.ReasonCertificateUsage, codes.Unauthenticated},
		{mtls.ErrRevoked, mtls.ReasonCertificateRevoked, codes.Unauthenticated},
		{mtls.ErrCredentials, mtls.ReasonCredentialsRequired, codes.Unauthenticated},
		{mtls.ErrRevocationUnavailable, mtls.ReasonRevocationUnavailable, codes.Unavailable},
		{mtls.ErrMalformedHeader, mtls.ReasonMalformedHeader, codes.InvalidArgument},
		{mtls.ErrDenied, mtls.ReasonPolicyDenied, codes.PermissionDenied},
		{mtls.ErrMisdirected, mtls.ReasonMisdirected, codes.PermissionDenied},
		{mtls.ErrRateLimited, mtls.ReasonRateLimited, codes.ResourceExhausted},
		{mtls.ErrTooManyRefusals, mtls.ReasonTooManyRefusals, codes.ResourceExhausted},
	}
	for _, tc := range cases {
		t.Run(tc.reason, func(t *testing.T) {
			e := &mtls.Error{Kind: tc.kind, Detail: secret, Err: errors.New(secret)}
			_, reason := mtls.StatusAndReason(e)
			require.Equal(t, tc.reason, reason)
			require.Equal(t, tc.code, mtlsgrpc.Code(tc.reason))
			for _, err := range []error{e, fmt.Errorf("wrapped: %w", e), tc.kind} {
				got := mtlsgrpc.Error(err)
				r := requireRefused(t, got, tc.reason)
				require.NotContains(t, got.Error(), secret)
				require.NotContains(t, r.message, "mallory")
				if tc.code == codes.ResourceExhausted {
					require.NotNil(t, r.retry, "RetryInfo")
					require.Equal(t, time.Second, r.retry.GetRetryDelay().AsDuration(), "at least one second")
				} else {
					require.Nil(t, r.retry)
				}
			}
		})
	}
	t.Run("every reason code", func(t *testing.T) {
		reasons := map[string]bool{}
		for _, tc := range cases {
			reasons[tc.reason] = true
		}
		require.Len(t, reasons, len(cases))
	})
}

// TestStatusFallback: an error that is none of the sentinels, and a reason code this version
// does not know, are Unauthenticated.
func TestStatusFallback(t *testing.T) {
	require.Equal(t, codes.Unauthenticated, mtlsgrpc.Code("some_future_reason"))
	require.Equal(t, codes.Unauthenticated, mtlsgrpc.Code(""))
	r := requireRefused(t, mtlsgrpc.Error(errors.New("a policy's own error: secret")), mtls.ReasonCertificateUntrusted)
	require.NotContains(t, r.message, "secret")
	require.Nil(t, mtlsgrpc.Status(nil))
	require.NoError(t, mtlsgrpc.Error(nil))
}

// TestStatusRetryAfter: RetryInfo carries Error.RetryAfter in whole seconds rounded up, as the
// Retry-After header of HTTP does; a refusal of another kind that sets it gets one too.
func TestStatusRetryAfter(t *testing.T) {
	cases := []struct {
		name  string
		kind  error
		after time.Duration
		want  time.Duration // 0: no RetryInfo
	}{
		{"rate limited, a fraction", mtls.ErrRateLimited, 100 * time.Millisecond, time.Second},
		{"rate limited, seconds and a bit", mtls.ErrRateLimited, 2*time.Second + time.Nanosecond, 3 * time.Second},
		{"rate limited, whole seconds", mtls.ErrRateLimited, 10 * time.Second, 10 * time.Second},
		{"too many refusals", mtls.ErrTooManyRefusals, time.Minute, time.Minute},
		{"revocation unavailable with a delay", mtls.ErrRevocationUnavailable, 5 * time.Second, 5 * time.Second},
		{"revocation unavailable", mtls.ErrRevocationUnavailable, 0, 0},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, reason := mtls.StatusAndReason(tc.kind)
			r := requireRefused(t, mtlsgrpc.Error(&mtls.Error{Kind: tc.kind, RetryAfter: tc.after}), reason)
			if tc.want == 0 {
				require.Nil(t, r.retry)
				return
			}
			require.NotNil(t, r.retry)
			require.Equal(t, tc.want, r.retry.GetRetryDelay().AsDuration())
		})
	}
}

// TestStatusShared: the statuses built once are not changed by what a caller does with one.
func TestStatusShared(t *testing.T) {
	err := mtlsgrpc.Error(mtls.ErrUntrusted)
	st, ok := status.FromError(err)
	require.True(t, ok)
	p := st.Proto()
	p.Message = "changed"
	p.Details = nil
	again := refusalOf(t, mtlsgrpc.Error(mtls.ErrUntrusted))
	require.Equal(t, "mtls: "+mtls.ReasonCertificateUntrusted, again.message)
	require.NotNil(t, again.info)
	require.True(t, strings.HasPrefix(again.info.GetReason(), "CERTIFICATE_"))
}
