package mtlsgrpctest

import (
	"context"
	"errors"
	"io"
	"sync"

	"github.com/certgate/mtls"
	"google.golang.org/grpc"
	"google.golang.org/grpc/metadata"
	"google.golang.org/protobuf/types/known/wrapperspb"
)

// The Echo service, written by hand (no generated code): a unary method and a bidirectional
// stream, both of google.protobuf.StringValue.
const (
	// EchoService is the service's full name.
	EchoService = "mtlsgrpctest.Echo"
	// SayMethod answers one message with [Reply].
	SayMethod = "/mtlsgrpctest.Echo/Say"
	// ChatMethod answers each message of the stream with [Reply], until the client closes it.
	ChatMethod = "/mtlsgrpctest.Echo/Chat"
)

// Reply is what Echo answers to msg from a caller with identity id (nil: none): the leaf's
// common name, ":" and msg; "-" stands for no identity.
func Reply(id *mtls.Identity, msg string) string {
	who := "-"
	if id != nil && id.Leaf != nil {
		who = id.Leaf.Subject.CommonName
	}
	return who + ":" + msg
}

// Seen is what a handler of Echo saw of a call: once per unary call, once per stream.
type Seen struct {
	Method   string
	Identity *mtls.Identity // nil: the context carried none
	Metadata metadata.MD    // the incoming metadata, as the handler reads it
}

// Echo implements the service and records what its handlers saw. Register it on a server with
// [Echo.Register].
type Echo struct {
	mu   sync.Mutex
	seen []Seen
}

// maxSeen bounds what an Echo records: later calls are answered and not recorded.
const maxSeen = 1 << 12

// Seen returns what the handlers saw so far, in order (at most the first 4096 calls).
func (e *Echo) Seen() []Seen {
	e.mu.Lock()
	defer e.mu.Unlock()
	return append([]Seen(nil), e.seen...)
}

// Reset forgets what the handlers saw.
func (e *Echo) Reset() {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.seen = nil
}

func (e *Echo) record(ctx context.Context, method string) *mtls.Identity {
	id, _ := mtls.FromContext(ctx)
	md, _ := metadata.FromIncomingContext(ctx)
	e.mu.Lock()
	defer e.mu.Unlock()
	if len(e.seen) < maxSeen {
		e.seen = append(e.seen, Seen{Method: method, Identity: id, Metadata: md})
	}
	return id
}

// Register registers the service on s.
func (e *Echo) Register(s grpc.ServiceRegistrar) { s.RegisterService(&EchoServiceDesc, e) }

// echoServer is the service's interface, for grpc.ServiceDesc.HandlerType.
type echoServer interface {
	say(ctx context.Context, in *wrapperspb.StringValue) (*wrapperspb.StringValue, error)
	chat(stream grpc.ServerStream) error
}

func (e *Echo) say(ctx context.Context, in *wrapperspb.StringValue) (*wrapperspb.StringValue, error) {
	id := e.record(ctx, SayMethod)
	return wrapperspb.String(Reply(id, in.GetValue())), nil
}

func (e *Echo) chat(stream grpc.ServerStream) error {
	id := e.record(stream.Context(), ChatMethod)
	for range maxChat {
		in := new(wrapperspb.StringValue)
		if err := stream.RecvMsg(in); errors.Is(err, io.EOF) {
			return nil
		} else if err != nil {
			return err
		}
		if err := stream.SendMsg(wrapperspb.String(Reply(id, in.GetValue()))); err != nil {
			return err
		}
	}
	return nil
}

// maxChat bounds the messages of one Chat stream.
const maxChat = 1 << 16

// EchoServiceDesc describes the Echo service for grpc.Server.RegisterService.
var EchoServiceDesc = grpc.ServiceDesc{
	ServiceName: EchoService,
	HandlerType: (*echoServer)(nil),
	Methods: []grpc.MethodDesc{{
		MethodName: "Say",
		Handler: func(srv any, ctx context.Context, dec func(any) error, interceptor grpc.UnaryServerInterceptor) (any, error) {
			in := new(wrapperspb.StringValue)
			if err := dec(in); err != nil {
				return nil, err
			}
			s := srv.(echoServer)
			if interceptor == nil {
				return s.say(ctx, in)
			}
			info := &grpc.UnaryServerInfo{Server: srv, FullMethod: SayMethod}
			return interceptor(ctx, in, info, func(ctx context.Context, req any) (any, error) {
				return s.say(ctx, req.(*wrapperspb.StringValue))
			})
		},
	}},
	Streams: []grpc.StreamDesc{{
		StreamName:    "Chat",
		Handler:       func(srv any, stream grpc.ServerStream) error { return srv.(echoServer).chat(stream) },
		ServerStreams: true,
		ClientStreams: true,
	}},
	Metadata: "mtlsgrpctest/echo",
}

// Say calls SayMethod on cc with msg and returns the answer.
func Say(ctx context.Context, cc grpc.ClientConnInterface, msg string, opts ...grpc.CallOption) (string, error) {
	out := new(wrapperspb.StringValue)
	if err := cc.Invoke(ctx, SayMethod, wrapperspb.String(msg), out, opts...); err != nil {
		return "", err
	}
	return out.GetValue(), nil
}

// Chat opens a ChatMethod stream on cc, sends each message and reads its answer, then closes the
// stream; it returns the answers, and the stream's error if any.
func Chat(ctx context.Context, cc grpc.ClientConnInterface, msgs []string, opts ...grpc.CallOption) ([]string, error) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	stream, err := cc.NewStream(ctx, &EchoServiceDesc.Streams[0], ChatMethod, opts...)
	if err != nil {
		return nil, err
	}
	var out []string
	for _, msg := range msgs {
		if err := stream.SendMsg(wrapperspb.String(msg)); err != nil {
			return out, recvErr(stream, err)
		}
		in := new(wrapperspb.StringValue)
		if err := stream.RecvMsg(in); err != nil {
			return out, err
		}
		out = append(out, in.GetValue())
	}
	if err := stream.CloseSend(); err != nil {
		return out, err
	}
	if err := stream.RecvMsg(new(wrapperspb.StringValue)); !errors.Is(err, io.EOF) {
		return out, err
	}
	return out, nil
}

// recvErr is the status of a stream whose SendMsg failed with err: SendMsg returns io.EOF once
// the server ended the stream, whose status RecvMsg then reads.
func recvErr(stream grpc.ClientStream, err error) error {
	if !errors.Is(err, io.EOF) {
		return err
	}
	return stream.RecvMsg(new(wrapperspb.StringValue))
}
