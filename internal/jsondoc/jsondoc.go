// Package jsondoc reads the JSON documents of the configuration (policy documents, binding files)
// into a tree that keeps the order of object keys, refusing invalid UTF-8, duplicate keys and
// documents nested too deep, and locates every fault by its JSON path ($.all[0].subject.cn). Bytes in, a tree or
// a plain error out.
package jsondoc

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strconv"
	"unicode/utf8"
)

// Kind is the type of a Value.
type Kind byte

// The kinds of value.
const (
	Object Kind = '{'
	List   Kind = '['
	String Kind = 's'
	Number Kind = 'n'
	Bool   Kind = 'b'
	Null   Kind = '0'
)

// Value is a decoded JSON value.
type Value struct {
	Kind Kind
	Keys []string // an object's keys, in document order
	Vals []*Value // an object's values (in the order of Keys) or a list's elements
	Str  string   // a string, or a number as written
}

// TypeName names the kind of v for an error message: "an object", "a list", ...
func (v *Value) TypeName() string {
	switch v.Kind {
	case Object:
		return "an object"
	case List:
		return "a list"
	case String:
		return "a string"
	case Number:
		return "a number"
	case Bool:
		return "a boolean"
	}
	return "null"
}

// Strings returns the strings of a non-empty list of strings found at path.
func (v *Value) Strings(path string) ([]string, error) {
	if v.Kind != List {
		return nil, Errorf(path, "expected a list of strings, found %s", v.TypeName())
	}
	if len(v.Vals) == 0 {
		return nil, Errorf(path, "empty list")
	}
	out := make([]string, len(v.Vals))
	for i, c := range v.Vals {
		if c.Kind != String {
			return nil, Errorf(IndexPath(path, i), "expected a string, found %s", c.TypeName())
		}
		out[i] = c.Str
	}
	return out, nil
}

// Error is a fault in a document at a JSON path.
type Error struct {
	Path string // such as $.all[0].subject
	Msg  string
}

func (e *Error) Error() string { return e.Path + ": " + e.Msg }

// Errorf returns the *Error at path.
func Errorf(path, format string, args ...any) error {
	return &Error{Path: path, Msg: fmt.Sprintf(format, args...)}
}

// Decode reads one JSON document, nested at most maxDepth levels deep, with no data after it. A
// document that is not valid UTF-8 (which encoding/json would silently rewrite to U+FFFD) and an
// object with a duplicate key are errors. Errors are *Error.
func Decode(doc []byte, maxDepth int) (*Value, error) {
	for i := 0; i < len(doc); {
		r, n := utf8.DecodeRune(doc[i:])
		if r == utf8.RuneError && n == 1 {
			return nil, Errorf("$", "not valid UTF-8 at byte %d (save the document as UTF-8)", i)
		}
		if r == '\\' {
			var lone bool
			if n, lone = escapeLen(doc[i:]); lone {
				return nil, Errorf("$", "an escape at byte %d stands for half a UTF-16 surrogate pair", i)
			}
		}
		i += n
	}
	dec := json.NewDecoder(bytes.NewReader(doc))
	dec.UseNumber()
	v, err := read(dec, "$", 0, maxDepth)
	if err != nil {
		return nil, err
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, Errorf("$", "data after the document")
	}
	return v, nil
}

// escapeLen returns how many bytes the escape at the start of b takes, and whether it is half of
// a UTF-16 surrogate pair standing alone (which encoding/json would read as U+FFFD).
func escapeLen(b []byte) (n int, lone bool) {
	hi, ok := hexEscape(b)
	switch {
	case !ok:
		return 2, false
	case hi < 0xd800 || hi >= 0xe000:
		return 6, false
	case hi < 0xdc00:
		if lo, ok := hexEscape(b[6:]); ok && lo >= 0xdc00 && lo < 0xe000 {
			return 12, false
		}
	}
	return 6, true
}

// hexEscape reads a \uXXXX escape at the start of b.
func hexEscape(b []byte) (rune, bool) {
	if len(b) < 6 || b[0] != '\\' || b[1] != 'u' {
		return 0, false
	}
	var r rune
	for _, c := range b[2:6] {
		switch {
		case '0' <= c && c <= '9':
			c -= '0'
		case 'a' <= c && c <= 'f':
			c -= 'a' - 10
		case 'A' <= c && c <= 'F':
			c -= 'A' - 10
		default:
			return 0, false
		}
		r = r<<4 | rune(c)
	}
	return r, true
}

func syntaxErr(err error) error {
	var se *json.SyntaxError
	// A document cut short: the decoder reports io.ErrUnexpectedEOF up to Go 1.26, and from Go 1.27
	// a SyntaxError with this text.
	if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) ||
		errors.As(err, &se) && se.Error() == "unexpected end of JSON input" {
		return Errorf("$", "incomplete JSON document")
	}
	if se != nil {
		return Errorf("$", "invalid JSON at byte %d: %v", se.Offset, se)
	}
	return Errorf("$", "invalid JSON: %v", err)
}

func read(dec *json.Decoder, path string, depth, maxDepth int) (*Value, error) {
	if depth > maxDepth {
		return nil, Errorf(path, "nested more than %d levels deep", maxDepth)
	}
	tok, err := dec.Token()
	if err != nil {
		return nil, syntaxErr(err)
	}
	switch t := tok.(type) {
	case json.Delim:
		var v *Value
		switch t {
		case '{':
			v = &Value{Kind: Object}
			seen := map[string]struct{}{}
			for dec.More() {
				kt, err := dec.Token()
				if err != nil {
					return nil, syntaxErr(err)
				}
				key, _ := kt.(string)
				if _, dup := seen[key]; dup {
					return nil, Errorf(path, "duplicate key %q", key)
				}
				seen[key] = struct{}{}
				child, err := read(dec, KeyPath(path, key), depth+1, maxDepth)
				if err != nil {
					return nil, err
				}
				v.Keys, v.Vals = append(v.Keys, key), append(v.Vals, child)
			}
		case '[':
			v = &Value{Kind: List}
			for i := 0; dec.More(); i++ {
				child, err := read(dec, IndexPath(path, i), depth+1, maxDepth)
				if err != nil {
					return nil, err
				}
				v.Vals = append(v.Vals, child)
			}
		default:
			return nil, Errorf(path, "invalid JSON")
		}
		if _, err := dec.Token(); err != nil {
			return nil, syntaxErr(err)
		}
		return v, nil
	case string:
		return &Value{Kind: String, Str: t}, nil
	case json.Number:
		return &Value{Kind: Number, Str: t.String()}, nil
	case bool:
		return &Value{Kind: Bool}, nil
	default:
		return &Value{Kind: Null}, nil
	}
}

// KeyPath is the path of key in the object at path: $.a, or $["a b"] for a key that is not a
// plain name.
func KeyPath(path, key string) string {
	for i := 0; i < len(key); i++ {
		c := key[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || c == '-' || c == '.') {
			return path + "[" + strconv.Quote(key) + "]"
		}
	}
	if key == "" {
		return path + `[""]`
	}
	return path + "." + key
}

// IndexPath is the path of element i of the list at path: $.all[2].
func IndexPath(path string, i int) string { return path + "[" + strconv.Itoa(i) + "]" }
