package mtls

import (
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/certgate/mtls/internal/certfile"
	"github.com/certgate/mtls/internal/jsondoc"
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

// docErr turns an error of the document reader, a *jsondoc.Error, into a *docError.
func docErr(err error) error {
	var je *jsondoc.Error
	if errors.As(err, &je) {
		return &docError{path: je.Path, msg: je.Msg}
	}
	return err
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
// Anything else fails: a document that is not valid UTF-8 (a Latin-1 "ü" would otherwise be read
// as U+FFFD and match nothing), an unknown or duplicate key, an object with several keys, a wrong type, an
// empty list, an empty string, a bad pattern. The error names the JSON path of the fault. The
// policies returned write the same document back with [json.Marshal], in a normalised form
// (lowercase hexadecimal, canonical attribute names, sorted keys).
func ParsePolicy(doc []byte) (Policy, error) {
	if len(doc) > maxPolicyDocument {
		return nil, errAt("$", "document larger than %d bytes", maxPolicyDocument)
	}
	v, err := jsondoc.Decode(doc, maxPolicyDepth)
	if err != nil {
		return nil, docErr(err)
	}
	return compilePolicy(v, "$")
}

// LoadPolicyFile reads and compiles a policy document file (see [ParsePolicy]).
//
// The policy remembers its file. Given to [Middleware.Require] or [Middleware.Shadow], itself or
// inside [All], [Any] or [Not], it is read again by that middleware's [Middleware.Reload] and the
// polling of [Config.ReloadInterval], together with every other file of the configuration: all of
// them are swapped in at once, or, if one is bad, none, and the error names the file. Each
// middleware keeps its own loads of it, so that one policy serves the routes of several. Used
// anywhere else (a policy of your own, [PrincipalWhen], [Config.Policy]), it is the document as
// read here; for a router-wide policy document, use [Config.PolicyFiles].
func LoadPolicyFile(path string) (Policy, error) {
	f, err := loadPolicyFile(path)
	if err != nil {
		return nil, err
	}
	return f, nil
}

func loadPolicyFile(path string) (*filePolicy, error) {
	read := time.Now() // file system time, as polling compares it
	doc, err := certfile.Read(path, maxPolicyDocument)
	if err != nil {
		return nil, fmt.Errorf("mtls: policy file: %w", err)
	}
	p, err := ParsePolicy(doc)
	var de *docError
	if errors.As(err, &de) {
		de.file = path
	}
	if err != nil {
		return nil, err
	}
	return &filePolicy{path: path, p: asMatcher(p), sum: sha256.Sum256(doc), read: read}, nil
}

// filePolicy is the policy of a document file as LoadPolicyFile read it, with what a middleware
// needs to read the file again when it guards a route (see Middleware.Require) and to tell
// whether the file changed since (see Middleware.watchPolicyFiles). It judges, describes and
// writes itself as the policy it holds.
type filePolicy struct {
	path string
	p    matcher
	sum  [sha256.Size]byte // of the document read
	read time.Time         // when it was read
}

func (f *filePolicy) Check(id *Identity) error     { return f.p.Check(id) }
func (f *filePolicy) match(id *Identity) bool      { return f.p.match(id) }
func (f *filePolicy) eval(id *Identity) verdict    { return f.p.eval(id) }
func (f *filePolicy) String() string               { return describe(f.p) }
func (f *filePolicy) MarshalJSON() ([]byte, error) { return json.Marshal(f.p) }

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

func compilePolicy(v *jsondoc.Value, path string) (Policy, error) {
	if v.Kind != jsondoc.Object {
		return nil, errAt(path, "expected an object such as {\"dns\": [...]}, found %s", v.TypeName())
	}
	if len(v.Keys) != 1 {
		return nil, errAt(path, "expected an object with exactly one key, found %d (combine rules with \"all\" or \"any\")", len(v.Keys))
	}
	key, val := v.Keys[0], v.Vals[0]
	at := jsondoc.KeyPath(path, key)
	switch key {
	case "all", "any":
		if val.Kind != jsondoc.List {
			return nil, errAt(at, "expected a list of policies, found %s", val.TypeName())
		}
		if len(val.Vals) == 0 {
			return nil, errAt(at, "empty list")
		}
		ps := make([]Policy, len(val.Vals))
		for i, c := range val.Vals {
			p, err := compilePolicy(c, jsondoc.IndexPath(at, i))
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
		if val.Kind != jsondoc.String {
			return nil, errAt(at, "expected a duration such as \"72h\", found %s", val.TypeName())
		}
		d, err := time.ParseDuration(val.Str)
		if err != nil || d <= 0 {
			return nil, errAt(at, "%q is not a positive duration such as \"72h\" or \"30m\"", val.Str)
		}
		return buildMinValidity(d, nil), nil
	}
	build, ok := listBuilders[key]
	if !ok {
		return nil, errAt(path, "unknown key %q (known: %s)", key, documentKeys)
	}
	vals, err := val.Strings(at)
	if err != nil {
		return nil, docErr(err)
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
		path = jsondoc.KeyPath(path, e.attr)
	}
	if e.index < 0 {
		return errAt(path, "%s", e.msg)
	}
	return errAt(jsondoc.IndexPath(path, e.index), "%s", e.Error())
}

func compileName(key string, v *jsondoc.Value, path string) (Policy, error) {
	if v.Kind != jsondoc.Object {
		return nil, errAt(path, "expected an object of attribute to values, found %s", v.TypeName())
	}
	if len(v.Keys) == 0 {
		return nil, errAt(path, "no attributes")
	}
	attrs := make(Attributes, len(v.Keys))
	for i, k := range v.Keys {
		vals, err := v.Vals[i].Strings(jsondoc.KeyPath(path, k))
		if err != nil {
			return nil, docErr(err)
		}
		attrs[k] = vals
	}
	for _, k := range v.Keys { // report the first bad attribute in document order
		if _, err := match.LookupAttr(k); err != nil {
			return nil, errAt(jsondoc.KeyPath(path, k), "%s", err)
		}
	}
	p, e := buildNamePolicy(key, attrs)
	if e != nil {
		return nil, elemAt(path, e)
	}
	return p, nil
}

func compileExtension(v *jsondoc.Value, path string) (Policy, error) {
	if v.Kind != jsondoc.Object {
		return nil, errAt(path, "expected an object such as {\"oid\": \"1.2.3\"}, found %s", v.TypeName())
	}
	var d extensionDoc
	var hasOID, hasValues, hasDER bool
	for i, k := range v.Keys {
		at := jsondoc.KeyPath(path, k)
		switch k {
		case "oid":
			if v.Vals[i].Kind != jsondoc.String {
				return nil, errAt(at, "expected a dotted object identifier, found %s", v.Vals[i].TypeName())
			}
			d.OID, hasOID = v.Vals[i].Str, true
		case "values", "der":
			vals, err := v.Vals[i].Strings(at)
			if err != nil {
				return nil, docErr(err)
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
			return nil, errAt(jsondoc.KeyPath(path, "oid"), "%s", e.Error())
		}
		return nil, elemAt(path, e)
	}
	return p, nil
}
