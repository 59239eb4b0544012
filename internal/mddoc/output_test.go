package mddoc

import (
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestOutputLines(t *testing.T) {
	for _, tt := range []struct{ name, in, want string }{
		{"port", "serving https://127.0.0.1:45517/", "serving https://127.0.0.1:PORT/"},
		{"IPv6 port", "remote=[::1]:5001", "remote=[::1]:PORT"},
		{"sha256 prefix", "hello acme-billing (sha256 af7b793eb1f74886…)", "hello acme-billing (sha256 HEX…)"},
		{"serial", "serial=0x5d41402abc4b2a76", "serial=HEX"},
		{"RFC 3339", "not_after=2026-05-01T10:00:00.123+02:00 x", "not_after=TIME x"},
		{"slog's default logger", "2026/05/01 10:00:00 INFO mtls: request refused", "TIME INFO mtls: request refused"},
		{"durations", "duration=1.234ms remaining=-23h59m59.5s age=12µs", "duration=DURATION remaining=-DURATION age=DURATION"},
		{"stable parts stay", "(b) no certificate         401 {\"status\":401}", "(b) no certificate         401 {\"status\":401}"},
		{"trailing spaces", "a  \n\nb\n", "a\n\nb"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			require.Equal(t, strings.Split(tt.want, "\n"), OutputLines(tt.in))
		})
	}
}
