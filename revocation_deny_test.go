package mtls

import (
	"crypto/sha256"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestDenyListLoadFileBound: a deny list file larger than its bound is refused without being read
// whole, and the list in force stays.
func TestDenyListLoadFileBound(t *testing.T) {
	file := filepath.Join(t.TempDir(), "deny.txt")
	f, err := os.Create(file)
	require.NoError(t, err)
	require.NoError(t, f.Truncate(maxDenyListFile+1)) // sparse: costs no disk
	require.NoError(t, f.Close())

	deny := NewDenyList(DenyCertificate(sha256.Sum256([]byte("leaf"))))
	err = deny.LoadFile(file)
	assert.ErrorContains(t, err, "larger than")
	assert.Equal(t, 1, deny.Len(), "the list in force stays")
}
