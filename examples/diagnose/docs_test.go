package main

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/certgate/mtls/internal/mddoc"
	"github.com/certgate/mtls/internal/testprog"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestDocsDiagnoseOutput runs the diagnose examples of docs/troubleshooting.md as written: the
// demo PKI of examples/whoami/make-certs.sh, the recipe that issues a leaf without an extended
// key usage, and each "$ go run ./examples/diagnose ..." line of the blocks marked
// <!-- diagnose-output -->, whose output must be the lines that follow it (but for times and
// hex digests).
func TestDocsDiagnoseOutput(t *testing.T) {
	sh := testprog.Require(t, "sh")
	testprog.Require(t, "openssl")
	const page = "../../docs/troubleshooting.md"
	src, err := os.ReadFile(page)
	require.NoError(t, err)
	doc := mddoc.Parse(src)

	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	root := t.TempDir() // stands for the repository's root: mtls-demo is made in it
	out, err := exec.CommandContext(ctx, sh, "../whoami/make-certs.sh", root).CombinedOutput()
	require.NoError(t, err, "%s", out)
	recipe, ok := doc.Marked("recipe:no-eku")
	require.True(t, ok, "%s has no block after <!-- recipe:no-eku -->", page)
	cmd := exec.CommandContext(ctx, sh, "-e")
	cmd.Dir, cmd.Stdin = root, strings.NewReader(recipe.Text)
	out, err = cmd.CombinedOutput()
	require.NoError(t, err, "%s:%d: %s", page, recipe.Line, out)

	runs := 0
	for _, b := range doc.Blocks {
		if b.Comment != "diagnose-output" {
			continue
		}
		lines := strings.Split(strings.TrimSuffix(b.Text, "\n"), "\n")
		for i := 0; i < len(lines); i++ {
			args, ok := strings.CutPrefix(lines[i], "$ go run ./examples/diagnose ")
			if !ok {
				continue
			}
			want := []string{}
			for i+1 < len(lines) && !strings.HasPrefix(lines[i+1], "$ ") {
				i++
				want = append(want, lines[i])
			}
			argv := strings.Fields(args)
			for j, a := range argv {
				if strings.HasPrefix(a, "mtls-demo/") {
					argv[j] = filepath.Join(root, a)
				}
			}
			var stdout, stderr bytes.Buffer
			run(argv, &stdout, &stderr)
			assert.Equal(t, mddoc.OutputLines(strings.Join(want, "\n")), mddoc.OutputLines(stdout.String()),
				"%s:%d: the output shown is not what diagnose prints (stderr: %s)", page, b.Line+1, stderr.String())
			runs++
		}
	}
	require.Equal(t, 2, runs, "the diagnose examples of %s", page)
}
