package jsondoc

import (
	"errors"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestDecode(t *testing.T) {
	v, err := Decode([]byte(`{"b": [1, "x", true, null], "a": {"c d": {}}}`), 8)
	require.NoError(t, err)
	assert.Equal(t, Object, v.Kind)
	assert.Equal(t, []string{"b", "a"}, v.Keys, "keys keep their order")
	list := v.Vals[0]
	require.Equal(t, List, list.Kind)
	require.Len(t, list.Vals, 4)
	assert.Equal(t, Number, list.Vals[0].Kind)
	assert.Equal(t, "1", list.Vals[0].Str)
	assert.Equal(t, String, list.Vals[1].Kind)
	assert.Equal(t, "x", list.Vals[1].Str)
	assert.Equal(t, Bool, list.Vals[2].Kind)
	assert.Equal(t, Null, list.Vals[3].Kind)
	assert.Equal(t, []string{"c d"}, v.Vals[1].Keys)
}

func TestDecodeErrors(t *testing.T) {
	tests := []struct {
		name, doc, want string
	}{
		{"duplicate key", `{"a": 1, "a": 2}`, `$: duplicate key "a"`},
		{"nested duplicate key", `{"a": [{"b c": {"x": 1, "x": 2}}]}`, `$.a[0]["b c"]: duplicate key "x"`},
		{"too deep", `[[[[[[1]]]]]]`, `$[0][0][0][0][0]: nested more than 4 levels deep`},
		{"data after", `{} {}`, `$: data after the document`},
		{"incomplete", `{"a": [`, `$: incomplete JSON document`},
		{"syntax", `{"a" 1}`, `$: invalid JSON at byte`},
		{"empty", ``, `$: incomplete JSON document`},
		{"Latin-1", "{\"o\": \"M\xfcller\"}", `$: not valid UTF-8 at byte 8`},
		{"truncated sequence", "{\"o\": \"\xc3\"}", `$: not valid UTF-8 at byte 7`},
		{"lone high surrogate", `{"o": "M\ud800ller"}`, `$: an escape at byte 8 stands for half a UTF-16 surrogate pair`},
		{"lone low surrogate", `{"o": "\udc00"}`, `$: an escape at byte 7 stands for half a UTF-16 surrogate pair`},
		{"high surrogate before another escape", `{"o": "\ud83d\u0041"}`, `$: an escape at byte 7 stands for half a UTF-16 surrogate pair`},
		{"lone surrogate after an escaped backslash", `{"o": "\\\udc00"}`, `$: an escape at byte 9 stands for half a UTF-16 surrogate pair`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Decode([]byte(tc.doc), 4)
			require.Error(t, err)
			var je *Error
			require.ErrorAs(t, err, &je)
			assert.True(t, strings.HasPrefix(err.Error(), tc.want), "%v", err)
		})
	}
}

func TestStrings(t *testing.T) {
	tests := []struct {
		name, doc string
		want      []string
		err       string
	}{
		{"list", `["a", "b"]`, []string{"a", "b"}, ""},
		{"not a list", `"a"`, nil, "$.k: expected a list of strings, found a string"},
		{"empty", `[]`, nil, "$.k: empty list"},
		{"not a string", `["a", 1]`, nil, "$.k[1]: expected a string, found a number"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			v, err := Decode([]byte(tc.doc), 4)
			require.NoError(t, err)
			got, err := v.Strings("$.k")
			if tc.err != "" {
				assert.EqualError(t, err, tc.err)
				return
			}
			require.NoError(t, err)
			assert.Equal(t, tc.want, got)
		})
	}
}

func TestPaths(t *testing.T) {
	assert.Equal(t, "$.all", KeyPath("$", "all"))
	assert.Equal(t, `$[""]`, KeyPath("$", ""))
	assert.Equal(t, `$["a\"b"]`, KeyPath("$", `a"b`))
	assert.Equal(t, "$.all[3]", IndexPath("$.all", 3))
}

// FuzzDecode: the reader never panics, returns a tree or an *Error, never both, and keeps every
// key of an object it accepts, once.
func FuzzDecode(f *testing.F) {
	for _, s := range []string{`{"all": [{"dns": ["a.example"]}, {"not": {"ip": ["10.0.0.0/8"]}}]}`,
		`{"a": 1, "a": 2}`, `[[[[[[1]]]]]]`, `{"a": [1.5e3, true, null, "\u00e9"]}`, `{} x`, `{"a":`, `"s"`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, doc []byte) {
		v, err := Decode(doc, 8)
		if err != nil {
			var je *Error
			if v != nil || !errors.As(err, &je) {
				t.Fatalf("error %v with tree %v, or not an *Error", err, v)
			}
			return
		}
		var walk func(v *Value, depth int)
		walk = func(v *Value, depth int) {
			if depth > 8 {
				t.Fatalf("accepted a tree deeper than 8")
			}
			if v.Kind == Object {
				if len(v.Keys) != len(v.Vals) {
					t.Fatalf("%d keys, %d values", len(v.Keys), len(v.Vals))
				}
				seen := map[string]bool{}
				for _, k := range v.Keys {
					if seen[k] {
						t.Fatalf("duplicate key %q accepted", k)
					}
					seen[k] = true
				}
			}
			for _, c := range v.Vals {
				walk(c, depth+1)
			}
		}
		walk(v, 0)
	})
}

func TestDecodeSurrogatePairs(t *testing.T) {
	for _, doc := range []string{`{"o": "\ud83d\ude00"}`, `{"o": "\\ud800"}`, `{"o": "\u00fc"}`} {
		_, err := Decode([]byte(doc), 8)
		require.NoError(t, err, doc)
	}
}
