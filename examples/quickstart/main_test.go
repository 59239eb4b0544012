package main

import (
	"bytes"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestQuickstartPrintsTheFourOutcomes(t *testing.T) {
	var out bytes.Buffer
	require.NoError(t, run(&out))
	for _, want := range []string{
		"(a) trusted client         200 hello acme-billing",
		`(b) no certificate         401 {"type":"about:blank","title":"Unauthorized","status":401,"reason":"certificate_required"}`,
		`(c) untrusted CA           401 {"type":"about:blank","title":"Unauthorized","status":401,"reason":"certificate_untrusted"}`,
		`(d) expired certificate    401 {"type":"about:blank","title":"Unauthorized","status":401,"reason":"certificate_expired"}`,
	} {
		assert.Contains(t, out.String(), want)
	}
}
