//go:build unix

package certfile

import (
	"path/filepath"
	"syscall"
	"testing"

	"github.com/stretchr/testify/require"
)

// TestReadRefusesPipe: a named pipe is refused before it is opened; opening it would block until
// a writer comes.
func TestReadRefusesPipe(t *testing.T) {
	fifo := filepath.Join(t.TempDir(), "fifo")
	if err := syscall.Mkfifo(fifo, 0o600); err != nil {
		t.Skipf("no named pipes here: %v", err)
	}
	_, err := Read(fifo, 5)
	require.ErrorContains(t, err, "not a regular file")
}
