//go:build unix

package mtls

import (
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestPollIgnoresPipes: a named pipe among a binding directory's files, or as a watched file,
// does not block polling (opening it would wait for a writer); a reload refuses it and keeps the
// state in force.
func TestPollIgnoresPipes(t *testing.T) {
	f, _, dir, m := newPolledBindings(t)
	if err := syscall.Mkfifo(filepath.Join(dir, "p-B.pem"), 0o600); err != nil {
		t.Skipf("no named pipes here: %v", err)
	}
	require.NoError(t, os.Remove(f.roots))
	require.NoError(t, syscall.Mkfifo(f.roots, 0o600))

	done := make(chan bool, 1)
	go func() { done <- m.poll() }()
	select {
	case changed := <-done:
		assert.True(t, changed)
	case <-time.After(time.Minute):
		t.Fatal("polling blocked on a named pipe")
	}
	st := m.ReloadStatus().Files
	assert.Contains(t, st.LastError, "not a regular file")
	assert.Equal(t, uint64(1), st.Generation)
	require.Error(t, m.Reload())
}
