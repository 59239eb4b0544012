// Package mddoc reads the Markdown of the project's documentation as GitHub renders it, as far as
// the tests that keep the documentation true need: fenced code blocks (with their info string,
// their line and the HTML comment on the line before them), headings outside code blocks with the
// anchors GitHub gives them, and links.
//
// It is not a full CommonMark parser. Container blocks are not parsed: a fence is recognised at
// any indentation, which is removed from the lines of its block, so that blocks inside list items
// are found; indented code blocks, setext headings and raw HTML links are not recognised.
package mddoc

import (
	"fmt"
	"regexp"
	"strings"
	"unicode"
)

// Doc is a parsed Markdown text.
type Doc struct {
	Lines    []string  // the text's lines, without their line endings
	Blocks   []Block   // fenced code blocks, in order
	Headings []Heading // headings outside code blocks, in order
	Links    []Link    // inline links, images and link reference definitions, in order
}

// Block is a fenced code block.
type Block struct {
	Info    string // the first word of the fence's info string: "go", "sh", or ""
	Line    int    // the line of the opening fence, from 1; the content starts on the next line
	Text    string // the content, each line without the fence's indentation and ending in "\n"
	Comment string // the HTML comment alone on the line right before the fence, without "<!--" and "-->", trimmed; "" if none
	Closed  bool   // a closing fence was found (an unclosed block runs to the end of the text)
}

// Heading is an ATX heading ("## Title").
type Heading struct {
	Level  int    // 1 to 6
	Text   string // as written, without the #s and surrounding spaces
	Anchor string // GitHub's anchor for it, unique in the document
	Line   int
}

// Link is the destination of an inline link or image, or of a link reference definition.
type Link struct {
	Text   string // the link text, as written ("" for a reference definition)
	Target string // the destination, without angle brackets and title
	Line   int    // the line on which the link starts
}

var (
	fenceRE   = regexp.MustCompile("^( *)(`{3,}|~{3,})(.*)$")
	headingRE = regexp.MustCompile(`^ {0,3}(#{1,6})(?:[ \t]+(.*?))?(?:[ \t]+#+)?[ \t]*$`)
	commentRE = regexp.MustCompile(`^ {0,3}<!--(.*)-->[ \t]*$`)
	// An inline link or image: [text](destination "title"). The text holds no brackets once code
	// spans are blanked.
	linkRE = regexp.MustCompile(`!?\[([^\[\]]*)\]\(\s*(<[^<>\n]*>|[^\s()<>]*)(?:\s+(?:"[^"]*"|'[^']*'|\([^()]*\)))?\s*\)`)
	// A link reference definition: [label]: destination
	refDefRE = regexp.MustCompile(`(?m)^ {0,3}\[[^\[\]]+\]:[ \t]*(<[^<>\n]*>|\S+)`)
)

// Parse reads a Markdown text. It accepts any input.
func Parse(src []byte) *Doc {
	text := strings.ReplaceAll(string(src), "\r\n", "\n")
	text = strings.TrimSuffix(text, "\n")
	d := &Doc{Lines: strings.Split(text, "\n")}
	// prose is the text outside code blocks, line for line: code lines are blanked so that
	// offsets keep their line numbers.
	prose := make([]string, len(d.Lines))
	seen := map[string]bool{}
	for i := 0; i < len(d.Lines); i++ {
		line := d.Lines[i]
		if m := fenceRE.FindStringSubmatch(line); m != nil && !(m[2][0] == '`' && strings.Contains(m[3], "`")) {
			b, end := d.block(i, len(m[1]), m[2], m[3])
			d.Blocks = append(d.Blocks, b)
			i = end
			continue
		}
		prose[i] = line
		if m := headingRE.FindStringSubmatch(line); m != nil {
			h := Heading{Level: len(m[1]), Text: strings.TrimSpace(m[2]), Line: i + 1}
			h.Anchor = unique(Slug(h.Text), seen)
			d.Headings = append(d.Headings, h)
		}
	}
	d.links(strings.Join(prose, "\n"))
	return d
}

// block reads the fenced block that opens on line i (from 0) and returns it with the index of its
// last line (the closing fence, or the text's last line).
func (d *Doc) block(i, indent int, fence, info string) (Block, int) {
	b := Block{Line: i + 1}
	if f := strings.Fields(info); len(f) > 0 {
		b.Info = f[0]
	}
	if i > 0 {
		if m := commentRE.FindStringSubmatch(d.Lines[i-1]); m != nil {
			b.Comment = strings.TrimSpace(m[1])
		}
	}
	var text strings.Builder
	j := i + 1
	for ; j < len(d.Lines); j++ {
		line := d.Lines[j]
		if t := strings.TrimLeft(line, " "); strings.HasPrefix(t, fence) && strings.Trim(t, fence[:1]+" \t") == "" {
			b.Closed = true
			break
		}
		for k := 0; k < indent && strings.HasPrefix(line, " "); k++ {
			line = line[1:]
		}
		text.WriteString(line)
		text.WriteByte('\n')
	}
	b.Text = text.String()
	if j == len(d.Lines) {
		j--
	}
	return b, j
}

// links finds the links of the prose, whose code blocks are blanked.
func (d *Doc) links(written string) {
	prose := blankCode(written) // of the same length: offsets are those of written
	lineOf := func(off int) int { return strings.Count(prose[:off], "\n") + 1 }
	for _, m := range linkRE.FindAllStringSubmatchIndex(prose, -1) {
		d.Links = append(d.Links, Link{
			Text:   written[m[2]:m[3]],
			Target: strings.Trim(prose[m[4]:m[5]], "<>"),
			Line:   lineOf(m[0]),
		})
	}
	for _, m := range refDefRE.FindAllStringSubmatchIndex(prose, -1) {
		d.Links = append(d.Links, Link{Target: strings.Trim(prose[m[2]:m[3]], "<>"), Line: lineOf(m[0])})
	}
}

// blankCode replaces backslash escapes and the content of code spans by spaces, keeping line
// breaks, so that neither is taken for a link.
func blankCode(s string) string {
	b := []byte(s)
	for i := 0; i < len(b); i++ {
		switch b[i] {
		case '\\':
			if i+1 < len(b) && b[i+1] != '\n' {
				b[i], b[i+1] = ' ', ' '
				i++
			}
		case '`':
			n := 1
			for i+n < len(b) && b[i+n] == '`' {
				n++
			}
			end := closingRun(b, i+n, n)
			if end < 0 { // no closing run: the backticks are literal
				i += n - 1
				continue
			}
			for k := i; k < end+n; k++ {
				if b[k] != '\n' {
					b[k] = ' '
				}
			}
			i = end + n - 1
		}
	}
	return string(b)
}

// closingRun returns the offset of the next run of exactly n backticks from off, before the end of
// the paragraph (a blank line), or -1.
func closingRun(b []byte, off, n int) int {
	for i := off; i < len(b); i++ {
		if b[i] == '\n' && i+1 < len(b) && b[i+1] == '\n' {
			return -1
		}
		if b[i] != '`' {
			continue
		}
		k := 1
		for i+k < len(b) && b[i+k] == '`' {
			k++
		}
		if k == n {
			return i
		}
		i += k - 1
	}
	return -1
}

var (
	inlineLinkRE = regexp.MustCompile(`!?\[([^\[\]]*)\]\([^()]*\)`)
	htmlTagRE    = regexp.MustCompile(`</?[a-zA-Z][^<>]*>`)
)

// Slug returns the anchor GitHub gives a heading of this text, before duplicates are numbered:
// the text as rendered (links replaced by their text, HTML tags and emphasis marks dropped),
// lower case, with every character other than a letter, digit, mark, '-', '_' or space dropped
// and each space turned into '-'.
func Slug(text string) string {
	text = inlineLinkRE.ReplaceAllString(text, "$1")
	text = htmlTagRE.ReplaceAllString(text, "")
	var b strings.Builder
	for _, r := range strings.ToLower(strings.TrimSpace(text)) {
		switch {
		case r == ' ':
			b.WriteByte('-')
		case r == '-' || r == '_' || unicode.IsLetter(r) || unicode.IsDigit(r) || unicode.IsMark(r):
			b.WriteRune(r)
		}
	}
	return b.String()
}

// unique numbers a repeated anchor as GitHub does: the second "x" becomes "x-1", the third "x-2".
func unique(slug string, seen map[string]bool) string {
	s := slug
	for n := 1; seen[s]; n++ {
		s = fmt.Sprintf("%s-%d", slug, n)
	}
	seen[s] = true
	return s
}

// Anchors returns the set of the document's heading anchors.
func (d *Doc) Anchors() map[string]bool {
	set := make(map[string]bool, len(d.Headings))
	for _, h := range d.Headings {
		set[h.Anchor] = true
	}
	return set
}

// Marked returns the first code block whose Comment is comment (the block right after the line
// "<!-- comment -->").
func (d *Doc) Marked(comment string) (Block, bool) {
	for _, b := range d.Blocks {
		if b.Comment == comment {
			return b, true
		}
	}
	return Block{}, false
}
