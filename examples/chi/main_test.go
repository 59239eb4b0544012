package main

import (
	"bytes"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestChiRoutes(t *testing.T) {
	var out bytes.Buffer
	require.NoError(t, run(&out))
	const (
		forbidden = `{"type":"about:blank","title":"Forbidden","status":403,"reason":"policy_denied"}`
		limited   = `(Retry-After) {"type":"about:blank","title":"Too Many Requests","status":429,"reason":"rate_limited"}`
	)
	want := []string{
		"anonymous       GET    /health         200 ok",
		`anonymous       GET    /orders         401 {"type":"about:blank","title":"Unauthorized","status":401,"reason":"certificate_required"}`,
		"alice           GET    /orders         200 hello alice",
		"alice           DELETE /orders/7       403 " + forbidden,
		"olga (ops)      DELETE /orders/7       200 hello olga",
		"alice           GET    /partner/stats  403 " + forbidden,
		"billing (prod)  GET    /partner/stats  200 hello billing",
		// partner-b (bronze) gets its burst of 3, then 429 with Retry-After; partner-a (gold)
		// carries on.
		"partner-a       GET    /quote          200 quote for partner-a",
		"partner-b       GET    /quote          200 quote for partner-b",
		"partner-a       GET    /quote          200 quote for partner-a",
		"partner-b       GET    /quote          200 quote for partner-b",
		"partner-a       GET    /quote          200 quote for partner-a",
		"partner-b       GET    /quote          200 quote for partner-b",
		"partner-a       GET    /quote          200 quote for partner-a",
		"partner-b       GET    /quote          429 " + limited,
	}
	require.Equal(t, want, strings.Split(strings.TrimSuffix(out.String(), "\n"), "\n"))
}
