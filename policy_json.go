package mtls

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"
	"time"

	"github.com/certgate/mtls/internal/match"
)

// Limits of a policy document: it is configuration, not client input, but a typo must not be able
// to exhaust memory either.
const (
	maxPolicyDocument = 1 << 20
	maxPolicyDepth    = 32
)

// docError is an error in a policy document, located by its JSON path ($.all[0].subject.cn).
type docError struct {
	file string
	path string
	msg  string
}

func (e *docError) Error() string {
	if e.file != "" {
		return "mtls: policy file " + strconv.Quote(e.file) + ": " + e.path + ": " + e.msg
	}
	return "mtls: policy " + e.path + ": " + e.msg
}

func errAt(path, format string, args ...any) error {
	return &docError{path: path, msg: fmt.Sprintf(format, args...)}
}

// ParsePolicy compiles a policy document. A document is a JSON object with exactly one key:
//
//	{"all": [{"issuer": {"cn": ["Issuing CA"]}},
//	         {"any": [{"subject": {"cn": ["alice"], "ou": ["payments"]}},
//	                  {"uri": ["spiffe://acme.test/ns/prod/*"]}]}]}
//
// all, any: a non-empty list of documents ([All], [Any]); not: a document ([Not]); subject,
// issuer: an object of attribute to accepted values ([RequireSubject], [RequireIssuer]); dns,
// email, uri, ip, spiffe, thumbprint, sha1, spki, issuer_thumbprint, serial, eku, principal: a
// non-empty list of strings (the matchers [RequireDNSNames], [RequireEmails], [RequireURIs],
// [RequireIPs], [RequireSPIFFEIDs], [RequireThumbprints], [RequireSHA1Thumbprints],
// [RequireSPKIPins], [RequireIssuerThumbprints], [RequireSerials], [RequireEKUs],
// [RequirePrincipals]); extension: {"oid": "1.2.3"} optionally with "values" or "der", a list of
// strings ([RequireExtension], [RequireExtensionDER]); min_validity: a Go duration such as "72h"
// ([RequireMinValidity] with a nil clock: the middleware's [Config.Now] where a middleware runs
// the policy).
//
// Anything else fails: an unknown or duplicate key, an object with several keys, a wrong type, an
// empty list, an empty string, a bad pattern. The error names the JSON path of the fault. The
// policies returned write the same document back with [json.Marshal], in a normalised form
// (lowercase hexadecimal, canonical attribute names, sorted keys).
func ParsePolicy(doc []byte) (Policy, error) {
	if len(doc) > maxPolicyDocument {
		return nil, errAt("$", "document larger than %d bytes", maxPolicyDocument)
	}
	v, err := decodeJSON(doc)
	if err != nil {
		return nil, err
	}
	return compilePolicy(v, "$")
}

// LoadPolicyFile reads and compiles a policy document file (see [ParsePolicy]).
func LoadPolicyFile(path string) (Policy, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("mtls: policy file: %w", err)
	}
	defer f.Close()
	doc, err := io.ReadAll(io.LimitReader(f, maxPolicyDocument+1))
	if err != nil {
		return nil, fmt.Errorf("mtls: policy file: %w", err)
	}
	p, err := ParsePolicy(doc)
	var de *docError
	if errors.As(err, &de) {
		de.file = path
	}
	return p, err
}

// jsonValue is a decoded JSON value that keeps the order of object keys.
type jsonValue struct {
	kind byte // '{', '[', 's' string, 'n' number, 'b' boolean, '0' null
	keys []string
	vals []*jsonValue
	str  string
}

func (v *jsonValue) typeName() string {
	switch v.kind {
	case '{':
		return "an object"
	case '[':
		return "a list"
	case 's':
		return "a string"
	case 'n':
		return "a number"
	case 'b':
		return "a boolean"
	}
	return "null"
}

func decodeJSON(doc []byte) (*jsonValue, error) {
	dec := json.NewDecoder(bytes.NewReader(doc))
	dec.UseNumber()
	v, err := readJSON(dec, "$", 0)
	if err != nil {
		return nil, err
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, errAt("$", "data after the document")
	}
	return v, nil
}

func syntaxErr(err error) error {
	var se *json.SyntaxError
	if errors.As(err, &se) {
		return errAt("$", "invalid JSON at byte %d: %v", se.Offset, se)
	}
	if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
		return errAt("$", "incomplete JSON document")
	}
	return errAt("$", "invalid JSON: %v", err)
}

func readJSON(dec *json.Decoder, path string, depth int) (*jsonValue, error) {
	if depth > maxPolicyDepth {
		return nil, errAt(path, "nested more than %d levels deep", maxPolicyDepth)
	}
	tok, err := dec.Token()
	if err != nil {
		return nil, syntaxErr(err)
	}
	switch t := tok.(type) {
	case json.Delim:
		if t == '{' {
			v := &jsonValue{kind: '{'}
			seen := map[string]struct{}{}
			for dec.More() {
				kt, err := dec.Token()
				if err != nil {
					return nil, syntaxErr(err)
				}
				key, _ := kt.(string)
				if _, dup := seen[key]; dup {
					return nil, errAt(path, "duplicate key %q", key)
				}
				seen[key] = struct{}{}
				child, err := readJSON(dec, keyPath(path, key), depth+1)
				if err != nil {
					return nil, err
				}
				v.keys, v.vals = append(v.keys, key), append(v.vals, child)
			}
			if _, err := dec.Token(); err != nil {
				return nil, syntaxErr(err)
			}
			return v, nil
		}
		if t == '[' {
			v := &jsonValue{kind: '['}
			for i := 0; dec.More(); i++ {
				child, err := readJSON(dec, indexPath(path, i), depth+1)
				if err != nil {
					return nil, err
				}
				v.vals = append(v.vals, child)
			}
			if _, err := dec.Token(); err != nil {
				return nil, syntaxErr(err)
			}
			return v, nil
		}
		return nil, errAt(path, "invalid JSON")
	case string:
		return &jsonValue{kind: 's', str: t}, nil
	case json.Number:
		return &jsonValue{kind: 'n', str: t.String()}, nil
	case bool:
		return &jsonValue{kind: 'b'}, nil
	default:
		return &jsonValue{kind: '0'}, nil
	}
}

func keyPath(path, key string) string {
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

func indexPath(path string, i int) string { return path + "[" + strconv.Itoa(i) + "]" }

// listBuilders are the document keys whose value is a list of strings.
var listBuilders = map[string]func([]string) (Policy, *elemError){
	"dns":               buildDNS,
	"email":             buildEmail,
	"uri":               buildURI,
	"ip":                buildIP,
	"spiffe":            buildSPIFFE,
	"thumbprint":        buildThumbprint,
	"sha1":              buildSHA1,
	"spki":              buildSPKI,
	"issuer_thumbprint": buildIssuerThumbprint,
	"serial":            buildSerial,
	"eku":               buildEKU,
	"principal":         buildPrincipal,
}

const documentKeys = "all, any, not, subject, issuer, dns, email, uri, ip, spiffe, thumbprint, sha1, spki, " +
	"issuer_thumbprint, serial, eku, extension, min_validity, principal"

func compilePolicy(v *jsonValue, path string) (Policy, error) {
	if v.kind != '{' {
		return nil, errAt(path, "expected an object such as {\"dns\": [...]}, found %s", v.typeName())
	}
	if len(v.keys) != 1 {
		return nil, errAt(path, "expected an object with exactly one key, found %d (combine rules with \"all\" or \"any\")", len(v.keys))
	}
	key, val := v.keys[0], v.vals[0]
	at := keyPath(path, key)
	switch key {
	case "all", "any":
		if val.kind != '[' {
			return nil, errAt(at, "expected a list of policies, found %s", val.typeName())
		}
		if len(val.vals) == 0 {
			return nil, errAt(at, "empty list")
		}
		ps := make([]Policy, len(val.vals))
		for i, c := range val.vals {
			p, err := compilePolicy(c, indexPath(at, i))
			if err != nil {
				return nil, err
			}
			ps[i] = p
		}
		if key == "all" {
			return All(ps...), nil
		}
		return Any(ps...), nil
	case "not":
		p, err := compilePolicy(val, at)
		if err != nil {
			return nil, err
		}
		return Not(p), nil
	case "subject", "issuer":
		return compileName(key, val, at)
	case "extension":
		return compileExtension(val, at)
	case "min_validity":
		if val.kind != 's' {
			return nil, errAt(at, "expected a duration such as \"72h\", found %s", val.typeName())
		}
		d, err := time.ParseDuration(val.str)
		if err != nil || d <= 0 {
			return nil, errAt(at, "%q is not a positive duration such as \"72h\" or \"30m\"", val.str)
		}
		return buildMinValidity(d, nil), nil
	}
	build, ok := listBuilders[key]
	if !ok {
		return nil, errAt(path, "unknown key %q (known: %s)", key, documentKeys)
	}
	vals, err := stringList(val, at)
	if err != nil {
		return nil, err
	}
	p, e := build(vals)
	if e != nil {
		return nil, elemAt(at, e)
	}
	return p, nil
}

// elemAt locates a builder's error under path.
func elemAt(path string, e *elemError) error {
	if e.attr != "" {
		path = keyPath(path, e.attr)
	}
	if e.index < 0 {
		return errAt(path, "%s", e.msg)
	}
	return errAt(indexPath(path, e.index), "%s", e.Error())
}

func stringList(v *jsonValue, path string) ([]string, error) {
	if v.kind != '[' {
		return nil, errAt(path, "expected a list of strings, found %s", v.typeName())
	}
	if len(v.vals) == 0 {
		return nil, errAt(path, "empty list")
	}
	out := make([]string, len(v.vals))
	for i, c := range v.vals {
		if c.kind != 's' {
			return nil, errAt(indexPath(path, i), "expected a string, found %s", c.typeName())
		}
		out[i] = c.str
	}
	return out, nil
}

func compileName(key string, v *jsonValue, path string) (Policy, error) {
	if v.kind != '{' {
		return nil, errAt(path, "expected an object of attribute to values, found %s", v.typeName())
	}
	if len(v.keys) == 0 {
		return nil, errAt(path, "no attributes")
	}
	attrs := make(Attributes, len(v.keys))
	for i, k := range v.keys {
		vals, err := stringList(v.vals[i], keyPath(path, k))
		if err != nil {
			return nil, err
		}
		attrs[k] = vals
	}
	for _, k := range v.keys { // report the first bad attribute in document order
		if _, err := match.LookupAttr(k); err != nil {
			return nil, errAt(keyPath(path, k), "%s", err)
		}
	}
	p, e := buildNamePolicy(key, attrs)
	if e != nil {
		return nil, elemAt(path, e)
	}
	return p, nil
}

func compileExtension(v *jsonValue, path string) (Policy, error) {
	if v.kind != '{' {
		return nil, errAt(path, "expected an object such as {\"oid\": \"1.2.3\"}, found %s", v.typeName())
	}
	var d extensionDoc
	var hasOID, hasValues, hasDER bool
	for i, k := range v.keys {
		at := keyPath(path, k)
		switch k {
		case "oid":
			if v.vals[i].kind != 's' {
				return nil, errAt(at, "expected a dotted object identifier, found %s", v.vals[i].typeName())
			}
			d.OID, hasOID = v.vals[i].str, true
		case "values", "der":
			vals, err := stringList(v.vals[i], at)
			if err != nil {
				return nil, err
			}
			if k == "values" {
				d.Values, hasValues = vals, true
			} else {
				d.DER, hasDER = vals, true
			}
		default:
			return nil, errAt(path, "unknown key %q (known: oid, values, der)", k)
		}
	}
	if !hasOID {
		return nil, errAt(path, "missing \"oid\"")
	}
	if hasValues && hasDER {
		return nil, errAt(path, "\"values\" and \"der\" exclude each other")
	}
	p, e := buildExtension(d, hasValues, hasDER)
	if e != nil {
		if e.attr == "oid" {
			return nil, errAt(keyPath(path, "oid"), "%s", e.Error())
		}
		return nil, elemAt(path, e)
	}
	return p, nil
}
