package mtls

import (
	"crypto/tls"
	"encoding/binary"
	"errors"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/certgate/mtls/mtlstest"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestHostFieldMustMatchAuthorityOverHTTP2: over HTTP/2 the Host check reads :authority, and a
// host header field beside it that names another server is refused too; a Go client never sends
// one, so the request is written frame by frame.
func TestHostFieldMustMatchAuthorityOverHTTP2(t *testing.T) {
	p := newPKI(t)
	outcome := make(chan string, 1)
	m, err := New(Config{RootCAs: p.root.Pool(), Intermediates: p.issuing.Pool(),
		ErrorHandler: func(w http.ResponseWriter, r *http.Request, err error) {
			w.WriteHeader(http.StatusMisdirectedRequest)
			if errors.Is(err, ErrMisdirected) {
				outcome <- "misdirected"
				return
			}
			outcome <- err.Error()
		}})
	require.NoError(t, err)
	serverCA := mtlstest.NewRootCA("Server CA")
	srv := httptest.NewUnstartedServer(m.Handler(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		outcome <- "served " + r.Proto
	})))
	srv.EnableHTTP2 = true
	srv.TLS = m.TLSConfig(&tls.Config{Certificates: []tls.Certificate{serverCA.NewServer("api.example.test").TLSCertificate()}})
	srv.Config.ErrorLog = log.New(io.Discard, "", 0)
	srv.StartTLS()
	t.Cleanup(srv.Close)

	for _, tt := range []struct {
		name      string
		authority string
		fields    [][2]string
		want      string
	}{
		{"authority alone", "api.example.test", nil, "served HTTP/2.0"},
		{"host field as the authority", "api.example.test", [][2]string{{"host", "api.example.test"}}, "served HTTP/2.0"},
		{"host field naming another server", "api.example.test", [][2]string{{"host", "admin.example.test"}}, "misdirected"},
		{"host field naming another server, second", "api.example.test", [][2]string{{"host", "api.example.test"}, {"host", "admin.example.test"}}, "misdirected"},
		{"authority with a port that is a name", "api.example.test:admin.example.test", nil, "misdirected"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			h2Send(t, srv.Listener.Addr().String(), "api.example.test", p.alice.TLSCertificate(), tt.authority, tt.fields)
			select {
			case got := <-outcome:
				assert.Equal(t, tt.want, got)
			case <-time.After(5 * time.Second):
				t.Fatal("no outcome")
			}
		})
	}
}

// h2Send opens an HTTP/2 connection to addr and sends one GET for / of authority, with the
// extra header fields after the pseudo-header fields, each a literal field (RFC 7541, 6.2.2).
// The response is read and discarded until the test ends.
func h2Send(t *testing.T, addr, sni string, cert tls.Certificate, authority string, fields [][2]string) {
	t.Helper()
	c, err := tls.Dial("tcp", addr, &tls.Config{
		ServerName: sni, Certificates: []tls.Certificate{cert}, NextProtos: []string{"h2"},
		InsecureSkipVerify: true, // the server's certificate is not under test
	})
	require.NoError(t, err)
	t.Cleanup(func() { c.Close() })
	require.NoError(t, c.SetDeadline(time.Now().Add(5*time.Second)))
	require.Equal(t, "h2", c.ConnectionState().NegotiatedProtocol)
	go func() { _, _ = io.Copy(io.Discard, c) }()

	hpackString := func(b []byte, s string) []byte { // no Huffman coding; lengths below 127 only
		require.Less(t, len(s), 127)
		return append(append(b, byte(len(s))), s...)
	}
	var block []byte
	all := append([][2]string{{":method", "GET"}, {":scheme", "https"}, {":authority", authority}, {":path", "/"}}, fields...)
	for _, f := range all {
		block = hpackString(hpackString(append(block, 0x00), f[0]), f[1])
	}
	frame := func(b []byte, typ, flags byte, stream uint32, payload []byte) []byte {
		n := len(payload)
		b = append(b, byte(n>>16), byte(n>>8), byte(n), typ, flags)
		return append(binary.BigEndian.AppendUint32(b, stream), payload...)
	}
	out := []byte("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n")
	out = frame(out, 0x4, 0, 0, nil)     // SETTINGS
	out = frame(out, 0x1, 0x5, 1, block) // HEADERS, END_STREAM | END_HEADERS
	_, err = c.Write(out)
	require.NoError(t, err)
}
