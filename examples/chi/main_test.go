package main

import (
	"bytes"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestChiRoutes(t *testing.T) {
	var out bytes.Buffer
	require.NoError(t, run(&out))
	for _, want := range []string{
		"anonymous       GET    /health         200 ok",
		`anonymous       GET    /orders         401 {"type":"about:blank","title":"Unauthorized","status":401,"reason":"certificate_required"}`,
		"alice           GET    /orders         200 hello alice",
		`alice           DELETE /orders/7       403 {"type":"about:blank","title":"Forbidden","status":403,"reason":"policy_denied"}`,
		"olga (ops)      DELETE /orders/7       200 hello olga",
		`alice           GET    /partner/stats  403 {"type":"about:blank","title":"Forbidden","status":403,"reason":"policy_denied"}`,
		"billing (prod)  GET    /partner/stats  200 hello billing",
	} {
		assert.Contains(t, out.String(), want)
	}
}
