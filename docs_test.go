package mtls

import (
	"context"
	"fmt"
	"go/ast"
	"go/parser"
	"go/token"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/certgate/mtls/internal/mddoc"
	"github.com/stretchr/testify/require"
)

// The documentation cannot fall behind the code: its Go blocks compile against the package as it
// is, its relative links and anchors resolve, and each page's contents list is its headings.

// docFiles returns the Markdown files of the documentation, relative to the repository root:
// README.md, docs/*.md and the examples' READMEs.
func docFiles(t *testing.T) []string {
	t.Helper()
	files := []string{"README.md"}
	for _, glob := range []string{"docs/*.md", "examples/*/README.md"} {
		m, err := filepath.Glob(glob)
		require.NoError(t, err)
		files = append(files, m...)
	}
	require.Greater(t, len(files), 3)
	return files
}

func parseDoc(t *testing.T, file string) *mddoc.Doc {
	t.Helper()
	src, err := os.ReadFile(file)
	require.NoError(t, err)
	return mddoc.Parse(src)
}

// docImports are the packages a Go fragment of the docs may use by name without importing them:
// each fragment gets an import for those it uses. trace and attribute are OpenTelemetry's, which
// the module does not require: the build replaces them by docOTel.
var docImports = map[string]string{
	"mtls":      "github.com/certgate/mtls",
	"mtlstest":  "github.com/certgate/mtls/mtlstest",
	"http":      "net/http",
	"httputil":  "net/http/httputil",
	"httptest":  "net/http/httptest",
	"url":       "net/url",
	"tls":       "crypto/tls",
	"x509":      "crypto/x509",
	"pkix":      "crypto/x509/pkix",
	"netip":     "net/netip",
	"slog":      "log/slog",
	"log":       "log",
	"fmt":       "fmt",
	"errors":    "errors",
	"context":   "context",
	"time":      "time",
	"os":        "os",
	"signal":    "os/signal",
	"syscall":   "syscall",
	"io":        "io",
	"strings":   "strings",
	"json":      "encoding/json",
	"chi":       "github.com/go-chi/chi/v5",
	"testing":   "testing",
	"require":   "github.com/stretchr/testify/require",
	"trace":     "go.opentelemetry.io/otel/trace",
	"attribute": "go.opentelemetry.io/otel/attribute",
}

// docPlaceholders are the free names the docs' fragments use for what a real program would have
// built before: each fragment's package declares them (a name the fragment declares itself at
// package level is left out).
var docPlaceholders = []struct{ name, typ string }{
	{"m", "*mtls.Middleware"},
	{"admins", "mtls.Policy"},
	{"mux", "*http.ServeMux"},
	{"r", "*http.Request"}, // a handler's arguments
	{"w", "http.ResponseWriter"},
	{"next", "http.Handler"}, // the handler below a middleware
	{"h", "http.Handler"},
	{"admin", "http.Handler"},
	{"partnerAPI", "http.Handler"},
	{"staffAPI", "http.Handler"},
	{"orders", "http.HandlerFunc"}, // handlers that both net/http's Handle and chi's Get take
	{"health", "http.HandlerFunc"},
	{"cancel", "http.HandlerFunc"},
	{"validPassword", "func(user, password string) bool"},
	{"claims", "struct{ Cnf struct{ X5tS256 string } }"}, // an access token's claims (RFC 8705 cnf)
	{"decisions", "interface{ WithLabelValues(...string) interface{ Inc() } }"}, // a Prometheus counter vector
}

// docOTel stands in for the two OpenTelemetry functions the docs call, with their signatures, so
// that the mtls side of such a fragment is checked.
var docOTel = map[string]string{
	"go.mod":                 "module go.opentelemetry.io/otel\n\ngo 1.25\n",
	"attribute/attribute.go": "package attribute\n\ntype KeyValue struct{ Key, Value string }\n\nfunc String(k, v string) KeyValue { return KeyValue{k, v} }\n",
	"trace/trace.go": "package trace\n\nimport (\n\t\"context\"\n\n\t\"go.opentelemetry.io/otel/attribute\"\n)\n\n" +
		"type Span interface{ SetAttributes(kv ...attribute.KeyValue) }\n\nfunc SpanFromContext(ctx context.Context) Span { return nil }\n",
}

// The kinds of Go block.
const (
	blockFile   = "file"   // a complete file, from its package clause
	blockDecls  = "decls"  // top-level declarations
	blockStmts  = "stmts"  // statements, compiled as a function's body
	blockFields = "fields" // the fields of an mtls.Config literal ("Header: &mtls.HeaderConfig{…},")
)

// docWrappers put a fragment of each kind in a file, in the order the kinds are tried.
var docWrappers = []struct{ kind, before, after string }{
	{blockDecls, "", ""},
	{blockFields, "var _ = mtls.Config{\n", "}\n"},
	{blockStmts, "func _() {\n", "}\n"},
}

// goBlockSource returns the kind of a Go block and the files of the package that compiles it, in
// package pkg: the block itself, with a //line directive naming file and line so that the
// compiler's errors point into the doc, the imports it uses and, for a fragment, the
// placeholders.
func goBlockSource(pkg, file string, b mddoc.Block) (kind string, files map[string]string, err error) {
	directive := fmt.Sprintf("//line %s:%d:1\n", file, b.Line+1)
	text := strings.TrimRight(b.Text, " \t\n") + "\n"
	if _, err := parser.ParseFile(token.NewFileSet(), "", text, parser.PackageClauseOnly); err == nil {
		return blockFile, map[string]string{"main.go": directive + text}, nil
	}
	var stmtsErr error
	for _, w := range docWrappers {
		fragment := text
		if w.kind == blockFields && !strings.HasSuffix(text, ",\n") {
			fragment = strings.TrimSuffix(text, "\n") + ",\n" // the last field may go without its comma
		}
		src := w.before + directive + fragment + w.after
		f, err := parser.ParseFile(token.NewFileSet(), "", "package "+pkg+"\n"+src, 0)
		if err != nil {
			if w.kind == blockStmts { // the likeliest kind says best what is wrong
				stmtsErr = err
			}
			continue
		}
		switch w.kind {
		case blockFields: // "Key: value" only: an expression alone is a statement
			lit := f.Decls[0].(*ast.GenDecl).Specs[0].(*ast.ValueSpec).Values[0].(*ast.CompositeLit)
			if !all(lit.Elts, func(e ast.Expr) bool { _, ok := e.(*ast.KeyValueExpr); return ok }) {
				continue
			}
		case blockStmts: // a local the fragment declares for the prose to use is used here
			var uses strings.Builder
			for _, name := range topLevelLocals(f) {
				fmt.Fprintf(&uses, "\t_ = %s\n", name)
			}
			src = w.before + directive + fragment + uses.String() + w.after
		}
		return w.kind, map[string]string{
			"block.go":        "package " + pkg + "\n\n" + importDecl(f) + src,
			"placeholders.go": placeholders(pkg, f),
		}, nil
	}
	return "", nil, fmt.Errorf("%s:%d: neither a Go file, declarations, Config fields nor statements: %w", file, b.Line+1, stmtsErr)
}

func all[T any](s []T, f func(T) bool) bool {
	for _, v := range s {
		if !f(v) {
			return false
		}
	}
	return true
}

// importDecl returns the import declaration of the docImports f uses by selector and does not
// declare itself.
func importDecl(f *ast.File) string {
	var paths []string
	ast.Inspect(f, func(n ast.Node) bool {
		if sel, ok := n.(*ast.SelectorExpr); ok {
			if id, ok := sel.X.(*ast.Ident); ok && id.Obj == nil {
				if path, ok := docImports[id.Name]; ok && !slices.Contains(paths, path) {
					paths = append(paths, path)
				}
			}
		}
		return true
	})
	if len(paths) == 0 {
		return ""
	}
	sort.Strings(paths)
	return "import (\n\t\"" + strings.Join(paths, "\"\n\t\"") + "\"\n)\n\n"
}

// topLevelLocals returns the variables declared by the statements of the fragment's function
// body, not those of nested blocks.
func topLevelLocals(f *ast.File) []string {
	var names []string
	add := func(ids ...*ast.Ident) {
		for _, id := range ids {
			if id.Name != "_" && !slices.Contains(names, id.Name) {
				names = append(names, id.Name)
			}
		}
	}
	body := f.Decls[len(f.Decls)-1].(*ast.FuncDecl).Body
	for _, s := range body.List {
		switch s := s.(type) {
		case *ast.AssignStmt:
			if s.Tok == token.DEFINE {
				for _, e := range s.Lhs {
					if id, ok := e.(*ast.Ident); ok {
						add(id)
					}
				}
			}
		case *ast.DeclStmt:
			if g, ok := s.Decl.(*ast.GenDecl); ok && g.Tok == token.VAR {
				for _, spec := range g.Specs {
					add(spec.(*ast.ValueSpec).Names...)
				}
			}
		}
	}
	return names
}

// placeholders returns the file declaring docPlaceholders in package pkg, leaving out (as _) the
// names f declares at package level.
func placeholders(pkg string, f *ast.File) string {
	var b strings.Builder
	fmt.Fprintf(&b, "package %s\n\nimport (\n\t\"net/http\"\n\n\t\"github.com/certgate/mtls\"\n)\n\nvar (\n", pkg)
	for _, p := range docPlaceholders {
		name := p.name
		if f.Scope.Lookup(name) != nil {
			name = "_"
		}
		fmt.Fprintf(&b, "\t%s %s\n", name, p.typ)
	}
	b.WriteString(")\n")
	return b.String()
}

// checkExcerpt checks that the non-blank lines of a block marked "doc:excerpt path" appear, in
// order and trimmed of leading tabs, in that file of the repository.
func checkExcerpt(file string, b mddoc.Block, path string) error {
	src, err := os.ReadFile(filepath.FromSlash(path))
	if err != nil {
		return fmt.Errorf("%s:%d: doc:excerpt: %w", file, b.Line, err)
	}
	lines := strings.Split(string(src), "\n")
	at := 0
	for i, line := range strings.Split(strings.TrimSuffix(b.Text, "\n"), "\n") {
		want := strings.TrimRight(strings.TrimLeft(line, "\t"), " \t")
		if want == "" {
			continue
		}
		for at < len(lines) && strings.TrimRight(strings.TrimLeft(lines[at], "\t"), " \t") != want {
			at++
		}
		if at == len(lines) {
			return fmt.Errorf("%s:%d: this line of the excerpt is not in %s (after the lines before it): %s", file, b.Line+1+i, path, want)
		}
		at++
	}
	return nil
}

func TestDocsGoBlocksCompile(t *testing.T) {
	root, err := filepath.Abs(".")
	require.NoError(t, err)
	goMod, err := os.ReadFile("go.mod")
	require.NoError(t, err)
	goSum, err := os.ReadFile("go.sum")
	require.NoError(t, err)

	// One module outside the repository, with the repository's module in place of its version and
	// the same requirements: one package per block.
	dir := t.TempDir()
	write := func(name, content string) {
		t.Helper()
		path := filepath.Join(dir, filepath.FromSlash(name))
		require.NoError(t, os.MkdirAll(filepath.Dir(path), 0o755))
		require.NoError(t, os.WriteFile(path, []byte(content), 0o644))
	}
	module, n := regexp.MustCompile(`(?m)^module .*$`), 0
	write("go.mod", module.ReplaceAllString(string(goMod), "module mtlsdocs")+
		"\nrequire (\n\tgithub.com/certgate/mtls v0.0.0\n\tgo.opentelemetry.io/otel v0.0.0\n)\n\n"+
		"replace github.com/certgate/mtls => "+root+"\n\nreplace go.opentelemetry.io/otel => ./otel\n")
	write("go.sum", string(goSum))
	for name, content := range docOTel {
		write("otel/"+name, content)
	}
	var problems []string
	for _, file := range docFiles(t) {
		for _, b := range parseDoc(t, file).Blocks {
			marker, _ := strings.CutPrefix(b.Comment, "doc:")
			if path, ok := strings.CutPrefix(marker, "excerpt "); ok {
				if err := checkExcerpt(file, b, strings.TrimSpace(path)); err != nil {
					problems = append(problems, err.Error())
				}
				continue
			}
			if marker != b.Comment {
				problems = append(problems, fmt.Sprintf("%s:%d: unknown marker <!-- %s -->", file, b.Line-1, b.Comment))
				continue
			}
			if b.Info != "go" {
				continue
			}
			n++
			pkg := fmt.Sprintf("b%02d", n)
			_, files, err := goBlockSource(pkg, file, b)
			if err != nil {
				problems = append(problems, err.Error())
				continue
			}
			for name, content := range files {
				write(pkg+"/"+name, content)
			}
		}
	}
	require.Empty(t, problems)
	require.Greater(t, n, 10, "Go blocks in the docs")
	if testing.Short() && os.Getenv("CI") != "true" {
		t.Skip("the build runs the go command; skipped with -short")
	}

	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Minute) // a cold cache compiles the dependencies
	defer cancel()
	cmd := exec.CommandContext(ctx, "go", "build", "./...")
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "GOWORK=off", "GOFLAGS=-mod=mod", "GOPROXY=off", "GOTOOLCHAIN=local")
	start := time.Now()
	out, err := cmd.CombinedOutput()
	t.Logf("go build of %d doc blocks: %v", n, time.Since(start).Round(time.Millisecond))
	require.NoError(t, err, "a Go block of the docs does not compile (placeholders and imports: docs_test.go):\n%s", out)
}

func TestGoBlockSource(t *testing.T) {
	for _, tt := range []struct {
		name, text, kind string
		has, hasNot      []string // in block.go
	}{
		{"file", "package main\n\nfunc main() {}\n", blockFile, []string{"//line docs/x.md:11:1\npackage main\n"}, nil},
		{"declarations", "func TestX(t *testing.T) { _ = m }\n", blockDecls, []string{`"testing"`, "//line docs/x.md:11:1\nfunc TestX"}, []string{"net/http"}},
		{"statements, unused locals", "a, b := 1, 2\nvar c, _ = 3, 4\nif d := 5; d > 0 {\n\te := 6\n}\n", blockStmts,
			[]string{"func _() {\n//line docs/x.md:11:1\na, b", "\t_ = a\n\t_ = b\n\t_ = c\n}"}, []string{"_ = d", "_ = e", "_ = _", "import"}},
		{"statements, imports used by selector only", "log := mtls.Must(nil)\nlog.Check(nil)\n_ = http.StatusOK\n", blockStmts,
			[]string{"import (\n\t\"github.com/certgate/mtls\"\n\t\"net/http\"\n)"}, []string{`"log"`}},
		{"Config fields", "Header: &mtls.HeaderConfig{\n\tFormat: mtls.MustHeaderFormat(\"nginx\"),\n},\n", blockFields,
			[]string{"var _ = mtls.Config{\n//line docs/x.md:11:1\nHeader: &mtls.HeaderConfig{\n\tFormat: mtls.MustHeaderFormat(\"nginx\"),\n},\n}\n"}, []string{",,"}},
		{"Config fields, the last without its comma", "Optional: true,\nHeader: &mtls.HeaderConfig{\n}\n", blockFields,
			[]string{"Optional: true,\nHeader: &mtls.HeaderConfig{\n},\n}\n"}, nil},
		{"an expression is a statement", "mux.Handle(\"/\", h)\n", blockStmts, []string{"func _() {"}, nil},
		{"a label is a statement", "Loop: for {\n\tbreak Loop\n}\n", blockStmts, []string{"func _() {"}, nil},
	} {
		t.Run(tt.name, func(t *testing.T) {
			kind, files, err := goBlockSource("p", "docs/x.md", mddoc.Block{Info: "go", Line: 10, Text: tt.text})
			require.NoError(t, err)
			require.Equal(t, tt.kind, kind)
			src := files["block.go"] + files["main.go"]
			for _, s := range tt.has {
				require.Contains(t, src, s)
			}
			for _, s := range tt.hasNot {
				require.NotContains(t, src, s)
			}
			if kind == blockFile {
				require.NotContains(t, files, "placeholders.go")
			} else {
				_, err := parser.ParseFile(token.NewFileSet(), "", files["placeholders.go"], 0)
				require.NoError(t, err)
			}
		})
	}
	t.Run("a name the block declares is not a placeholder", func(t *testing.T) {
		_, files, err := goBlockSource("p", "docs/x.md", mddoc.Block{Text: "var orders = http.NotFoundHandler()\n"})
		require.NoError(t, err)
		require.NotContains(t, files["placeholders.go"], "orders")
		require.Contains(t, files["placeholders.go"], "\tm *mtls.Middleware\n")
	})
	t.Run("neither", func(t *testing.T) {
		_, _, err := goBlockSource("p", "docs/x.md", mddoc.Block{Line: 10, Text: "x := := 1\n"})
		require.ErrorContains(t, err, "docs/x.md:11: neither")
	})
}

func TestCheckExcerpt(t *testing.T) {
	for _, tt := range []struct{ name, text, err string }{
		{"in order, tabs and blank lines aside", "func TestCheckExcerpt(t *testing.T) {\n\n\t\t\tfor _, tt := range []struct{ name, text, err string }{\n", ""},
		{"not in the file", "func TestCheckExcerpt(t *testing.T) {\nfunc NoSuchFunction() {\n", "docs/x.md:12: this line of the excerpt is not in docs_test.go"},
		{"out of order", "for _, tt := range []struct{ name, text, err string }{\nfunc TestCheckExcerpt(t *testing.T) {\n", "docs/x.md:12: this line"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			err := checkExcerpt("docs/x.md", mddoc.Block{Line: 10, Text: tt.text}, "docs_test.go")
			if tt.err == "" {
				require.NoError(t, err)
			} else {
				require.ErrorContains(t, err, tt.err)
			}
		})
	}
}

var urlScheme = regexp.MustCompile(`^[a-zA-Z][a-zA-Z0-9+.-]*:`)

// linkProblem returns what is wrong with a relative link of file (a path from the repository
// root), or "" if it resolves: the file it names exists in the repository and its anchor is a
// heading of it (a line, "L12", of a file that is not Markdown).
func linkProblem(t *testing.T, file, target string) string {
	if urlScheme.MatchString(target) || strings.HasPrefix(target, "//") {
		return ""
	}
	path, anchor, hasAnchor := strings.Cut(target, "#")
	dest := file
	if path != "" {
		p, err := url.PathUnescape(path)
		if err != nil {
			return err.Error()
		}
		if strings.HasPrefix(p, "/") {
			dest = filepath.Clean(strings.TrimPrefix(p, "/"))
		} else {
			dest = filepath.Join(filepath.Dir(file), filepath.FromSlash(p))
		}
	}
	if dest == ".." || strings.HasPrefix(dest, ".."+string(filepath.Separator)) {
		return "outside the repository"
	}
	info, err := os.Stat(dest)
	if err != nil {
		return "no such file " + filepath.ToSlash(dest)
	}
	if !hasAnchor {
		return ""
	}
	if info.IsDir() {
		dest = filepath.Join(dest, "README.md")
	}
	if !strings.HasSuffix(dest, ".md") {
		if regexp.MustCompile(`^L[1-9][0-9]*(-L[1-9][0-9]*)?$`).MatchString(anchor) {
			return ""
		}
		return "an anchor into a file that is not Markdown"
	}
	if _, err := os.Stat(dest); err != nil {
		return "no such file " + filepath.ToSlash(dest)
	}
	if !parseDoc(t, dest).Anchors()[anchor] {
		return fmt.Sprintf("no heading of %s has the anchor #%s", filepath.ToSlash(dest), anchor)
	}
	return ""
}

func TestDocsLinksResolve(t *testing.T) {
	var problems []string
	checked := 0
	for _, file := range docFiles(t) {
		for _, l := range parseDoc(t, file).Links {
			if p := linkProblem(t, file, l.Target); p != "" {
				problems = append(problems, fmt.Sprintf("%s:%d: (%s): %s", file, l.Line, l.Target, p))
			}
			checked++
		}
	}
	require.Empty(t, problems)
	require.Greater(t, checked, 50, "links in the docs")
}

func TestLinkProblem(t *testing.T) {
	for _, tt := range []struct{ name, file, target, want string }{
		{"a file", "README.md", "docs/policies.md", ""},
		{"a directory", "README.md", "examples/proxies", ""},
		{"up and down", "docs/getting-started.md", "../examples/gin/main.go", ""},
		{"from the root", "docs/testing.md", "/README.md", ""},
		{"an anchor of the file itself", "README.md", "#license", ""},
		{"an anchor of another file", "docs/README.md", "policies.md#policy-documents-json", ""},
		{"a line of a Go file", "docs/README.md", "../config.go#L12", ""},
		{"an external link", "README.md", "https://example.test/nowhere#x", ""},
		{"no such file", "README.md", "docs/nowhere.md", "no such file docs/nowhere.md"},
		{"no such anchor", "README.md", "docs/policies.md#nowhere", "no heading of docs/policies.md has the anchor #nowhere"},
		{"an empty anchor", "README.md", "#", "no heading of README.md has the anchor #"},
		{"outside", "docs/README.md", "../../etc/passwd", "outside the repository"},
		{"an anchor into Go", "README.md", "config.go#Config", "an anchor into a file that is not Markdown"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			require.Equal(t, tt.want, linkProblem(t, tt.file, tt.target))
		})
	}
}

func TestDocsShape(t *testing.T) {
	readme, err := os.Stat("README.md")
	require.NoError(t, err)
	require.LessOrEqual(t, readme.Size(), int64(16<<10), "README.md is a front page: the reference goes in docs/")

	pages, err := filepath.Glob("docs/*.md")
	require.NoError(t, err)
	entry := regexp.MustCompile(`^- \[(.*)\]\(#(.*)\)$`)
	for _, page := range pages {
		if page == filepath.Join("docs", "README.md") {
			continue
		}
		t.Run(filepath.Base(page), func(t *testing.T) {
			d := parseDoc(t, page)
			var want, got []string
			first := len(d.Lines) + 1 // the first "## " heading's line
			heading := map[string]string{}
			for _, h := range d.Headings {
				heading[h.Anchor] = h.Text
				if h.Level == 2 {
					want = append(want, h.Text)
					first = min(first, h.Line)
				}
			}
			at := slices.Index(d.Lines, "Contents:")
			require.GreaterOrEqual(t, at, 0, "%s has no line \"Contents:\"", page)
			require.Less(t, at+1, first, "%s: the contents come before the first section", page)
			i := at + 1
			for i < len(d.Lines) && d.Lines[i] == "" {
				i++
			}
			for ; i < len(d.Lines) && strings.HasPrefix(d.Lines[i], "- "); i++ {
				m := entry.FindStringSubmatch(d.Lines[i])
				require.NotNil(t, m, "%s:%d: a contents entry is \"- [Heading](#anchor)\"", page, i+1)
				got = append(got, m[1])
				// The anchor leads to a heading of that text (with a repeated heading, GitHub
				// numbers the anchors of the later ones: "#title-1").
				require.Equal(t, m[1], heading[m[2]], "%s:%d: the anchor #%s leads to another heading", page, i+1, m[2])
			}
			require.Equal(t, want, got, "%s:%d: the contents are the \"## \" headings, in order", page, at+1)
		})
	}
}
