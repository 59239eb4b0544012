// Package testprog finds the external programs (nginx, openssl, curl, sh, ...) that the
// module's integration tests run, with one rule for every test: skipped under -short or when the
// program is missing, except under CI (CI=true), where a missing program fails the test so that
// CI can never pass by skipping.
package testprog

import (
	"os"
	"os/exec"
	"testing"
)

// Require returns the path of the program name, or skips (or, under CI=true, fails) t.
func Require(t testing.TB, name string) string {
	t.Helper()
	if testing.Short() {
		t.Skipf("integration test needs %s; skipped with -short", name)
	}
	path, err := exec.LookPath(name)
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("integration test needs %s, which is not installed (CI=true: not skipping)", name)
		}
		t.Skipf("integration test needs %s, which is not installed", name)
	}
	return path
}
