package mtlsgrpc

import (
	"errors"
	"strings"
	"time"

	"github.com/certgate/mtls"
	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/protoadapt"
	"google.golang.org/protobuf/types/known/durationpb"
)

// Domain is the domain of the google.rpc.ErrorInfo detail of every refusal: the path of the
// module that defines the reason codes, globally unique and the project's own.
const Domain = "github.com/certgate/mtls"

// codeOf is the gRPC code of each stable reason code; a reason code that is not listed (one a
// later version of package mtls may add) is refused as Unauthenticated.
var codeOf = map[string]codes.Code{
	mtls.ReasonCertificateRequired:   codes.Unauthenticated,
	mtls.ReasonCertificateUntrusted:  codes.Unauthenticated,
	mtls.ReasonCertificateExpired:    codes.Unauthenticated,
	mtls.ReasonCertificateNotYet:     codes.Unauthenticated,
	mtls.ReasonCertificateUsage:      codes.Unauthenticated,
	mtls.ReasonCertificateRevoked:    codes.Unauthenticated,
	mtls.ReasonCredentialsRequired:   codes.Unauthenticated,
	mtls.ReasonRevocationUnavailable: codes.Unavailable,
	mtls.ReasonMalformedHeader:       codes.InvalidArgument,
	mtls.ReasonPolicyDenied:          codes.PermissionDenied,
	// gRPC has no code for a call sent to another server than the one named in the handshake:
	// the client may not make it there.
	mtls.ReasonMisdirected:     codes.PermissionDenied,
	mtls.ReasonRateLimited:     codes.ResourceExhausted,
	mtls.ReasonTooManyRefusals: codes.ResourceExhausted,
}

// Code returns the gRPC code of a refusal with the stable reason code reason (see
// [mtls.StatusAndReason]): Unauthenticated for the certificate_* reasons, credentials_required
// and any reason this version does not know; PermissionDenied for policy_denied and
// misdirected_request; Unavailable for revocation_unavailable; InvalidArgument for
// header_malformed; ResourceExhausted for rate_limited and too_many_refusals.
func Code(reason string) codes.Code {
	if c, ok := codeOf[reason]; ok {
		return c
	}
	return codes.Unauthenticated
}

// statuses holds the status of each reason code without a retry delay, built once: refusals of
// a flood cost no encoding.
var statuses = func() map[string]*status.Status {
	out := make(map[string]*status.Status, len(codeOf))
	for reason := range codeOf {
		out[reason] = newStatus(reason, 0)
	}
	return out
}()

// Status returns the gRPC status of a refusal err returned by [mtls.Middleware.Decide] or by a
// policy: the code of its reason ([Code]), the message "mtls: " and the reason code, and a
// google.rpc.ErrorInfo detail whose Reason is the reason code upper-cased, whose Domain is
// [Domain] and whose metadata "reason" is the reason code as HTTP clients get it. A refusal with
// an [mtls.Error.RetryAfter], and any ResourceExhausted one, also gets a google.rpc.RetryInfo
// detail: the delay in whole seconds, rounded up, at least one, as the Retry-After header that
// HTTP clients get. Nothing else of err reaches the client: its Detail and cause are for logs.
// Status returns nil for a nil err.
func Status(err error) *status.Status {
	if err == nil {
		return nil
	}
	_, reason := mtls.StatusAndReason(err)
	var retry time.Duration
	if e := (*mtls.Error)(nil); errors.As(err, &e) {
		retry = e.RetryAfter
	}
	if retry <= 0 && Code(reason) != codes.ResourceExhausted {
		if st, ok := statuses[reason]; ok {
			return st
		}
	}
	return newStatus(reason, retry)
}

// Error is Status(err).Err(): the error a handler or interceptor returns to refuse a call; nil
// for a nil err.
func Error(err error) error {
	if err == nil {
		return nil
	}
	return Status(err).Err()
}

// newStatus builds the status of reason; retry is the delay of a RetryInfo detail, added when
// positive or when the code is ResourceExhausted.
func newStatus(reason string, retry time.Duration) *status.Status {
	code := Code(reason)
	st := status.New(code, "mtls: "+reason)
	details := []protoadapt.MessageV1{&errdetails.ErrorInfo{
		Reason:   strings.ToUpper(reason),
		Domain:   Domain,
		Metadata: map[string]string{"reason": reason},
	}}
	if retry > 0 || code == codes.ResourceExhausted {
		details = append(details, &errdetails.RetryInfo{RetryDelay: durationpb.New(retrySeconds(retry))})
	}
	withDetails, err := st.WithDetails(details...)
	if err != nil { // only for a detail that does not marshal: ours always do
		return st
	}
	return withDetails
}

// retrySeconds is d in whole seconds, rounded up, at least one: what [mtls.WriteError] sends in
// Retry-After.
func retrySeconds(d time.Duration) time.Duration {
	return max(1, (d+time.Second-1)/time.Second) * time.Second
}
