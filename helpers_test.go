package mtls

import (
	"os"
	"os/exec"
	"testing"
)

// requireBinary returns the path of an external program an integration test needs. The test is
// skipped under -short, or when the program is missing outside CI; under CI (CI=true) a missing
// program fails the test, so that CI can never pass by skipping.
func requireBinary(t testing.TB, name string) string {
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
