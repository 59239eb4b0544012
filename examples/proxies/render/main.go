// Command render renders the proxy configurations of examples/proxies (nginx, HAProxy, Caddy,
// Apache httpd) for the demo PKI of examples/whoami/make-certs.sh, and prints, for each proxy,
// the command that starts it, the examples/whoami command to run behind it and a curl command
// that calls whoami through it. At the repository's root:
//
//	sh examples/whoami/make-certs.sh
//	go run ./examples/proxies/render
//
// -pki names the demo PKI's directory (default mtls-demo); -out the directory to render into
// (default: a new temporary directory). Each proxy listens on 127.0.0.1 only, on ports of its
// own (see proxies.List), so that all four can run at once. A missing PKI file exits 1 with the
// error on stderr.
package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"

	"github.com/certgate/mtls/examples/proxies"
)

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

// run renders and prints the instructions, and returns the exit code.
func run(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("render", flag.ContinueOnError)
	fs.SetOutput(stderr)
	pki := fs.String("pki", "mtls-demo", "directory of the demo PKI that examples/whoami/make-certs.sh made")
	out := fs.String("out", "", "directory to render into (default: a new temporary directory)")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "render: unexpected arguments: %q\n", fs.Args())
		return 2
	}
	if err := render(*pki, *out, stdout); err != nil {
		fmt.Fprintf(stderr, "render: %v\n", err)
		return 1
	}
	return 0
}

func render(pki, out string, w io.Writer) error {
	if out == "" {
		dir, err := os.MkdirTemp("", "mtls-proxies-")
		if err != nil {
			return err
		}
		// The proxies' worker processes may run as another user than the one starting them.
		if err := os.Chmod(dir, 0o755); err != nil {
			return err
		}
		out = dir
	}
	demos, err := proxies.RenderDemo(pki, out, nil)
	if err != nil {
		return err
	}
	fmt.Fprintf(w, "rendered into %s\n", out)
	for _, d := range demos {
		fmt.Fprintf(w, "\n%s (format %s): verifying listener %d, forwarding listener %d, whoami on %d\n",
			d.Name, d.Format, d.Ports.Verify, d.Ports.Forward, d.Ports.Backend)
		fmt.Fprintf(w, "  check:  %s\n", d.Check())
		fmt.Fprintf(w, "  proxy:  %s\n", d.Start())
		fmt.Fprintf(w, "  whoami: %s\n", d.Whoami())
		fmt.Fprintf(w, "  curl:   %s\n", d.Curl(d.Ports.Verify))
	}
	return nil
}
