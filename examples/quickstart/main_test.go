package main

import (
	"bytes"
	"log"
	"os"
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
	shown, printed := mddoc.OutputLines(block.Text), mddoc.OutputLines(got)
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
