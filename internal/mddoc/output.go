package mddoc

import (
	"regexp"
	"strings"
)

// volatile are the parts of a program's output that differ between runs, each with what replaces
// it.
var volatile = []struct {
	re   *regexp.Regexp
	with string
}{
	{regexp.MustCompile(`\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}:?\d{2})?`), "TIME"}, // RFC 3339, slog's handlers
	{regexp.MustCompile(`\d{4}/\d{2}/\d{2} \d{2}:\d{2}:\d{2}(\.\d+)?`), "TIME"},                         // log's and slog's default logger
	{regexp.MustCompile(`((?:\d{1,3}\.){3}\d{1,3}|\[[0-9a-fA-F:.]+\]|localhost):\d+`), "$1:PORT"},       // listeners' and clients' ports
	{regexp.MustCompile(`\b(?:0x)?[0-9a-fA-F]{8,}\b`), "HEX"},                                           // fingerprints, serials
	{regexp.MustCompile(`\b(\d+(\.\d+)?(ns|µs|us|ms|h|m|s))+\b`), "DURATION"},                           // slog durations
}

// OutputLines returns the lines of a program's output with the parts that differ between runs
// (times, ports, hex digests and serials, durations) replaced by placeholders, and trailing
// blanks dropped, so that the output a document shows compares with a fresh run line by line.
func OutputLines(s string) []string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	for i, line := range lines {
		line = strings.TrimRight(line, " \t")
		for _, v := range volatile {
			line = v.re.ReplaceAllString(line, v.with)
		}
		lines[i] = line
	}
	return lines
}
