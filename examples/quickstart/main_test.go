package main

import (
	"bytes"
	"log"
	"os"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/certgate/mtls/internal/mddoc"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// lockedWriter serialises the writes of the server's log and of run.
type lockedWriter struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (w *lockedWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.buf.Write(p)
}

// TestQuickstartPrintsTheFourOutcomes: each client's outcome, and before each refusal the
// server's log line (through slog.Default(), which writes to the log package's output: here the
// same output, as a terminal shows stdout and stderr) with its reason.
func TestQuickstartPrintsTheFourOutcomes(t *testing.T) {
	var out lockedWriter
	savedOut, savedFlags := log.Writer(), log.Flags()
	t.Cleanup(func() { log.SetOutput(savedOut); log.SetFlags(savedFlags) })
	log.SetOutput(&out)
	log.SetFlags(log.LstdFlags)
	require.NoError(t, run(&out))
	got := out.buf.String()
	for _, want := range []string{
		"(a) trusted client         200 hello acme-billing",
		`(b) no certificate         401 {"type":"about:blank","title":"Unauthorized","status":401,"reason":"certificate_required"}`,
		`(c) untrusted CA           401 {"type":"about:blank","title":"Unauthorized","status":401,"reason":"certificate_untrusted"}`,
		`(d) expired certificate    401 {"type":"about:blank","title":"Unauthorized","status":401,"reason":"certificate_expired"}`,
	} {
		assert.Contains(t, got, want)
	}
	lines := strings.Split(got, "\n")
	lineOf := func(prefix string) int {
		return slices.IndexFunc(lines, func(l string) bool { return strings.HasPrefix(l, prefix) })
	}
	for _, c := range []struct{ client, reason, detail string }{
		{"(b) no certificate", "certificate_required", "no certificate on the TLS connection"},
		{"(c) untrusted CA", "certificate_untrusted", "it is not one this service trusts"},
		{"(d) expired certificate", "certificate_expired", "the client must renew it"},
	} {
		i := lineOf(c.client)
		require.Positive(t, i, got)
		assert.Contains(t, lines[i-1], "INFO mtls: request refused", "the server's line comes before the client's")
		assert.Contains(t, lines[i-1], "reason="+c.reason)
		assert.Contains(t, lines[i-1], c.detail)
	}
	assert.NotContains(t, lines[lineOf("(a) trusted client")-1], "mtls:", "an acceptance is not logged")

	// The README shows this output: line for line, but for what differs between runs.
	readme, err := os.ReadFile("../../README.md")
	require.NoError(t, err)
	block, ok := mddoc.Parse(readme).Marked("quickstart-output")
	require.True(t, ok, "README.md has no code block right after <!-- quickstart-output -->")
	shown, printed := outputLines(block.Text), outputLines(got)
	for i := range max(len(shown), len(printed)) {
		var s, p string
		if i < len(shown) {
			s = shown[i]
		}
		if i < len(printed) {
			p = printed[i]
		}
		assert.Equal(t, p, s, "README.md:%d shows another line than go run ./examples/quickstart prints (here normalised)", block.Line+1+i)
	}
}

// volatile are the parts of the output that differ between runs, each with what replaces it.
var volatile = []struct {
	re   *regexp.Regexp
	with string
}{
	{regexp.MustCompile(`\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}:?\d{2})?`), "TIME"}, // RFC 3339, slog's handlers
	{regexp.MustCompile(`\d{4}/\d{2}/\d{2} \d{2}:\d{2}:\d{2}(\.\d+)?`), "TIME"},                         // log's and slog's default logger
	{regexp.MustCompile(`((?:\d{1,3}\.){3}\d{1,3}|\[[0-9a-fA-F:.]+\]|localhost):\d+`), "$1:PORT"},       // the listener's and the clients' ports
	{regexp.MustCompile(`\b(?:0x)?[0-9a-fA-F]{8,}\b`), "HEX"},                                           // fingerprints, serials
	{regexp.MustCompile(`\b(\d+(\.\d+)?(ns|µs|us|ms|h|m|s))+\b`), "DURATION"},                           // slog durations
}

// outputLines returns the lines of the quickstart's output with their volatile parts replaced.
func outputLines(s string) []string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	for i, line := range lines {
		line = strings.TrimRight(line, " \t")
		for _, v := range volatile {
			line = v.re.ReplaceAllString(line, v.with)
		}
		lines[i] = line
	}
	return lines
}

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
			require.Equal(t, strings.Split(tt.want, "\n"), outputLines(tt.in))
		})
	}
}
