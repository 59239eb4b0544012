package main

import (
	"bytes"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

// TestGRPCPrintsEachOutcome: the trusted client is greeted by name, the other two are refused
// with their reason codes, and the health check answers everyone.
func TestGRPCPrintsEachOutcome(t *testing.T) {
	var out bytes.Buffer
	require.NoError(t, run(&out))
	require.Equal(t, []string{
		"trusted client   Hello  OK               hi acme-billing",
		"trusted client   Check  OK               SERVING",
		"untrusted CA     Hello  Unauthenticated  reason=certificate_untrusted",
		"untrusted CA     Check  OK               SERVING",
		"no certificate   Hello  Unauthenticated  reason=certificate_required",
		"no certificate   Check  OK               SERVING",
	}, strings.Split(strings.TrimSuffix(out.String(), "\n"), "\n"))
}
