package main

import (
	"bytes"
	"strings"
	"testing"
)

func TestGinRoutes(t *testing.T) {
	var out bytes.Buffer
	if err := run(&out); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		"anonymous   GET    /health    200 ok",
		`anonymous   GET    /orders    401 {"type":"about:blank","title":"Unauthorized","status":401,"reason":"certificate_required"}`,
		"alice       GET    /orders    200 hello alice",
		`alice       DELETE /orders/7  403 {"type":"about:blank","title":"Forbidden","status":403,"reason":"policy_denied"}`,
		"olga (ops)  DELETE /orders/7  200 hello olga",
	} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("output lacks %q:\n%s", want, out.String())
		}
	}
}
