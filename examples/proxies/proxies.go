// Package proxies renders the proxy configurations of this directory (nginx, HAProxy, Caddy,
// Apache httpd in front of a service in header mode) and says how to check and run each proxy.
// It is the code behind the render command (go run ./examples/proxies/render) and behind the
// module's integration tests, which start the real proxies from the same templates; it is part of
// the examples, not of the library's API.
//
// A template's placeholders are written @NAME@ (see README.md in this directory): [Fill] replaces
// them and refuses to leave any behind. [RenderDemo] renders every proxy for the demo PKI of
// examples/whoami/make-certs.sh.
package proxies

import (
	"embed"
	"fmt"
	"path"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
)

//go:embed nginx/nginx.conf.template haproxy/haproxy.cfg.template caddy/Caddyfile.template apache/httpd.conf.template
var templates embed.FS

// Proxy is one proxy of this directory.
type Proxy struct {
	Name         string            // its directory here: nginx, haproxy, caddy, apache
	Binary       string            // the program (Debian package names: nginx, haproxy, caddy, apache2)
	Template     string            // the template's file name in the directory
	Format       string            // the name of the mtls.HeaderFormat that reads what it forwards
	Chain        bool              // it forwards the intermediates the client sent
	Vars         map[string]string // placeholders of its own template only, with their default
	DefaultPorts Ports             // where [RenderDemo] makes it listen unless told otherwise
}

// Ports are the TCP ports on 127.0.0.1 of one rendered proxy and of the service behind it.
type Ports struct {
	Verify  int // the listener where the proxy verifies the client certificate
	Forward int // the listener where the proxy forwards any certificate unverified
	Backend int // the service, in plain HTTP
}

// List returns the proxies of this directory. The default ports are distinct from each other
// and from the other examples' (examples/whoami listens on 8443, examples/prometheus on 8444
// and 9464), so that every demo can run at once, and need no privilege.
func List() []Proxy {
	return []Proxy{
		{Name: "nginx", Binary: "nginx", Template: "nginx.conf.template", Format: "nginx",
			DefaultPorts: Ports{Verify: 8451, Forward: 8452, Backend: 8081}},
		{Name: "haproxy", Binary: "haproxy", Template: "haproxy.cfg.template", Format: "haproxy", Chain: true,
			DefaultPorts: Ports{Verify: 8453, Forward: 8454, Backend: 8082}},
		{Name: "caddy", Binary: "caddy", Template: "Caddyfile.template", Format: "caddy",
			DefaultPorts: Ports{Verify: 8455, Forward: 8456, Backend: 8083}},
		{Name: "apache", Binary: "apache2", Template: "httpd.conf.template", Format: "apache", Chain: true,
			Vars:         map[string]string{"MODULES_DIR": "/usr/lib/apache2/modules"}, // Debian's
			DefaultPorts: Ports{Verify: 8457, Forward: 8458, Backend: 8084}},
	}
}

// Source returns the text of p's template.
func (p Proxy) Source() (string, error) {
	b, err := templates.ReadFile(path.Join(p.Name, p.Template))
	return string(b), err
}

// ConfigName is the file name of p's rendered configuration: the template's, without
// ".template".
func (p Proxy) ConfigName() string { return strings.TrimSuffix(p.Template, ".template") }

// Args returns the arguments (after the program) that run p in the foreground with the
// configuration conf, rendered with runDir as @RUN_DIR@.
func (p Proxy) Args(runDir, conf string) []string {
	switch p.Name {
	case "nginx":
		return []string{"-p", runDir + "/", "-c", conf, "-g", "daemon off;"}
	case "haproxy":
		return []string{"-db", "-f", conf}
	case "caddy":
		return []string{"run", "--config", conf, "--adapter", "caddyfile"}
	case "apache":
		return []string{"-d", runDir, "-f", conf, "-DFOREGROUND"}
	}
	return nil
}

// CheckArgs returns the arguments (after the program) of p's own syntax check of conf: the
// proxy reads the configuration and the files it names, says whether it would start, and exits.
func (p Proxy) CheckArgs(runDir, conf string) []string {
	switch p.Name {
	case "nginx":
		return []string{"-t", "-p", runDir + "/", "-c", conf}
	case "haproxy":
		return []string{"-c", "-f", conf}
	case "caddy":
		return []string{"validate", "--config", conf, "--adapter", "caddyfile"}
	case "apache":
		return []string{"-t", "-d", runDir, "-f", conf}
	}
	return nil
}

// Env returns the environment variables (NAME=value) that p needs beside its arguments: Caddy
// writes into its home and XDG directories, here runDir/home.
func (p Proxy) Env(runDir string) []string {
	if p.Name != "caddy" {
		return nil
	}
	home := filepath.Join(runDir, "home")
	return []string{"HOME=" + home, "XDG_DATA_HOME=" + home, "XDG_CONFIG_HOME=" + home}
}

// Render returns p's template filled with vars and p's own defaults ([Proxy.Vars]) for any they
// leave out.
func (p Proxy) Render(vars map[string]string) (string, error) {
	src, err := p.Source()
	if err != nil {
		return "", err
	}
	all := make(map[string]string, len(vars)+len(p.Vars))
	for k, v := range p.Vars {
		all[k] = v
	}
	for k, v := range vars {
		all[k] = v
	}
	return Fill(src, all)
}

var placeholder = regexp.MustCompile(`@[A-Z_]+@`)

// Fill replaces each placeholder @NAME@ of text by vars[NAME]. A placeholder left without a
// value is an error naming it.
func Fill(text string, vars map[string]string) (string, error) {
	pairs := make([]string, 0, 2*len(vars))
	for k, v := range vars {
		pairs = append(pairs, "@"+k+"@", v)
	}
	out := strings.NewReplacer(pairs...).Replace(text)
	if left := placeholder.FindAllString(out, -1); len(left) > 0 {
		slices.Sort(left)
		return "", fmt.Errorf("placeholders without a value: %s", strings.Join(slices.Compact(left), ", "))
	}
	return out, nil
}
