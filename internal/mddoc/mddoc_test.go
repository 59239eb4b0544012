package mddoc

import (
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestParseBlocks(t *testing.T) {
	for _, tt := range []struct {
		name string
		src  string
		want []Block
	}{
		{"plain", "text\n```go\nx := 1\n```\n", []Block{{Info: "go", Line: 2, Text: "x := 1\n", Closed: true}}},
		{"info string of several words", "```go title\nx\n```", []Block{{Info: "go", Line: 1, Text: "x\n", Closed: true}}},
		{"comment before", "<!-- doc:excerpt a.go -->\n```go\nx\n```", []Block{{Info: "go", Line: 2, Text: "x\n", Comment: "doc:excerpt a.go", Closed: true}}},
		{"comment not right before", "<!-- a -->\n\n```\nx\n```", []Block{{Line: 3, Text: "x\n", Closed: true}}},
		{"in a list item", "1. step:\n\n   ```go\n   \tx := 1\n   ```\n", []Block{{Info: "go", Line: 3, Text: "\tx := 1\n", Closed: true}}},
		{"longer closing fence, tildes", "~~~sh\n```\n~~~~\n", []Block{{Info: "sh", Line: 1, Text: "```\n", Closed: true}}},
		{"a shorter fence does not close", "````\n```\n````", []Block{{Line: 1, Text: "```\n", Closed: true}}},
		{"unclosed", "```go\nx\ny", []Block{{Info: "go", Line: 1, Text: "x\ny\n"}}},
		{"backticks in the info string: not a fence", "``` a`b\nx", nil},
		{"CRLF", "```go\r\nx\r\n```\r\n", []Block{{Info: "go", Line: 1, Text: "x\n", Closed: true}}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			require.Equal(t, tt.want, Parse([]byte(tt.src)).Blocks)
		})
	}
}

func TestParseHeadings(t *testing.T) {
	src := "# Title\n\n## A net/http server\n```\n## not a heading\n```\n## Coming from net/http or nginx ##\n" +
		"### A Go gateway in front: `Forward`\n## Policy documents (JSON)\n## examples/whoami\n#hashtag\n" +
		"## Policy documents (JSON)\n## Policy documents (JSON)\n## [Linked](x.md) *emphasis* <code>tag</code>\n"
	var got []Heading
	for _, h := range Parse([]byte(src)).Headings {
		got = append(got, h)
	}
	require.Equal(t, []Heading{
		{1, "Title", "title", 1},
		{2, "A net/http server", "a-nethttp-server", 3},
		{2, "Coming from net/http or nginx", "coming-from-nethttp-or-nginx", 7},
		{3, "A Go gateway in front: `Forward`", "a-go-gateway-in-front-forward", 8},
		{2, "Policy documents (JSON)", "policy-documents-json", 9},
		{2, "examples/whoami", "exampleswhoami", 10},
		{2, "Policy documents (JSON)", "policy-documents-json-1", 12},
		{2, "Policy documents (JSON)", "policy-documents-json-2", 13},
		{2, "[Linked](x.md) *emphasis* <code>tag</code>", "linked-emphasis-tag", 14},
	}, got)
}

func TestSlug(t *testing.T) {
	for _, tt := range []struct{ text, want string }{
		{"Shadow policies: tighten rules safely", "shadow-policies-tighten-rules-safely"},
		{"Check your proxy: the probe", "check-your-proxy-the-probe"},
		{"snake_case and kebab-case", "snake_case-and-kebab-case"},
		{"Two  spaces", "two--spaces"},
		{"Ünïcode … dots", "ünïcode--dots"},
		{"Header mode with `DangerouslyTrustProxyVerification`", "header-mode-with-dangerouslytrustproxyverification"},
	} {
		t.Run(tt.text, func(t *testing.T) {
			require.Equal(t, tt.want, Slug(tt.text))
		})
	}
}

func TestParseLinks(t *testing.T) {
	src := "See [Getting started](docs/getting-started.md) and [Policies and\nprincipals](docs/policies.md#cost).\n" +
		"`[not](a-link.md)` and \\[escaped](no.md) and ![image](img.png \"title\")\n" +
		"```\n[in](code.md)\n```\n" +
		"[`examples/gin`](../examples/gin/main.go), [anchor](#here), [angle](<a b.md>), [web](https://x.test/a_(b))\n" +
		"[ref]: docs/ref.md\n"
	require.Equal(t, []Link{
		{"Getting started", "docs/getting-started.md", 1},
		{"Policies and\nprincipals", "docs/policies.md#cost", 1},
		{"image", "img.png", 3},
		{"`examples/gin`", "../examples/gin/main.go", 7},
		{"anchor", "#here", 7},
		{"angle", "a b.md", 7},
		{"", "docs/ref.md", 8},
	}, Parse([]byte(src)).Links)
}

func TestMarked(t *testing.T) {
	d := Parse([]byte("<!-- one -->\n```\n1\n```\n<!-- two -->\n```sh\n2\n```\n"))
	b, ok := d.Marked("two")
	require.True(t, ok)
	require.Equal(t, "2\n", b.Text)
	_, ok = d.Marked("three")
	require.False(t, ok)
}

// FuzzParse checks that any text parses, with blocks, headings and links on lines of the text and
// anchors unique.
func FuzzParse(f *testing.F) {
	f.Add([]byte("# T\n\n<!-- c -->\n```go\nx\n```\n[a](b.md#c) `[d](e)`\n"))
	f.Fuzz(func(t *testing.T, src []byte) {
		d := Parse(src)
		n := len(d.Lines)
		seen := map[string]bool{}
		for _, h := range d.Headings {
			require.True(t, h.Line >= 1 && h.Line <= n, "heading line %d of %d", h.Line, n)
			require.False(t, seen[h.Anchor], "anchor %q twice", h.Anchor)
			seen[h.Anchor] = true
		}
		for _, b := range d.Blocks {
			require.True(t, b.Line >= 1 && b.Line <= n, "block line %d of %d", b.Line, n)
			require.LessOrEqual(t, strings.Count(b.Text, "\n"), n-b.Line)
		}
		for _, l := range d.Links {
			require.True(t, l.Line >= 1 && l.Line <= n, "link line %d of %d", l.Line, n)
		}
	})
}
