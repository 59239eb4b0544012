package mtls

import (
	"bytes"
	"crypto/sha1" //nolint:gosec // SHA-1 thumbprints identify certificates; they are not a signature
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"math/big"
	"strconv"
	"time"
	"unicode/utf8"

	"github.com/certgate/mtls/internal/match"
)

// verdict is a matcher's answer (see match.Verdict). undecided is for an identity a rule cannot
// judge either way (such as a subject with two CNs): it is neither allowed nor, under [Not],
// turned into an allowance. The combinators follow three-valued logic: in All a no wins over
// undecided, in Any a yes wins over undecided, and Not keeps undecided.
type verdict = match.Verdict

const (
	no        = match.No
	yes       = match.Yes
	undecided = match.Undecided
)

// elemError is a bad value in a matcher's input. The constructors name the value; the document
// loader names its JSON path from attr and index.
type elemError struct {
	attr  string // attribute (subject, issuer) or field (extension); empty otherwise
	index int    // index in the list, -1 for the list as a whole
	value string
	msg   string
}

func (e *elemError) Error() string {
	if e.index < 0 {
		return e.msg
	}
	return strconv.Quote(e.value) + ": " + e.msg
}

func listErr(msg string) *elemError { return &elemError{index: -1, msg: msg} }

// public is what a constructor returns: the policy its builder made, or the builder's error
// naming the constructor.
func public(name string, p Policy, e *elemError) (Policy, error) {
	if e != nil {
		return nil, publicErr(name, e)
	}
	return p, nil
}

// publicErr turns a builder's error into the error of the exported constructor name.
func publicErr(name string, e *elemError) error {
	if e.attr != "" {
		return fmt.Errorf("mtls: %s: %s: %s", name, e.attr, e.Error())
	}
	return fmt.Errorf("mtls: %s: %s", name, e.Error())
}

// eachValue runs parse on every value, which must be present and non-empty, and returns the
// distinct results' document forms in order.
func eachValue(vals []string, parse func(s string) (norm string, err error)) ([]string, *elemError) {
	if len(vals) == 0 {
		return nil, listErr("no values")
	}
	seen := make(map[string]bool, len(vals))
	out := make([]string, 0, len(vals))
	for i, v := range vals {
		if v == "" {
			return nil, &elemError{index: i, value: v, msg: "empty value"}
		}
		norm, err := parse(v)
		if err != nil {
			return nil, &elemError{index: i, value: v, msg: err.Error()}
		}
		if !seen[norm] {
			seen[norm] = true
			out = append(out, norm)
		}
	}
	return out, nil
}

// asWritten is a value parser for eachValue that keeps the value as written.
func asWritten(add func(string) error) func(string) (string, error) {
	return func(s string) (string, error) { return s, add(s) }
}

var errNotUTF8 = errors.New("not valid UTF-8")

// validUTF8 is a value parser for eachValue that accepts UTF-8 strings as they are.
func validUTF8(s string) (string, error) {
	if !utf8.ValidString(s) {
		return "", errNotUTF8
	}
	return s, nil
}

// ---- Distinguished names -------------------------------------------------------------------

// Attributes selects distinguished-name attributes for [RequireSubject] and [RequireIssuer]: each
// key is an attribute and its values are the accepted values. Keys are cn, o, ou, c, l, st,
// street, postal_code, serial_number, dc, uid and email (case-insensitive), or any attribute type
// as a dotted object identifier such as "2.5.4.12".
type Attributes map[string][]string

// buildName compiles attribute rules for a subject or issuer matcher.
func buildName(attrs Attributes) ([]match.NameRule, map[string][]string, *elemError) {
	if len(attrs) == 0 {
		return nil, nil, listErr("no attributes")
	}
	var rules []match.NameRule
	doc := make(map[string][]string, len(attrs))
	for key, vals := range attrs {
		a, err := match.LookupAttr(key)
		if err != nil {
			return nil, nil, &elemError{attr: key, index: -1, msg: err.Error()}
		}
		if _, dup := doc[a.Name]; dup {
			return nil, nil, &elemError{attr: key, index: -1, msg: "attribute given twice (as " + a.Name + ")"}
		}
		norm, e := eachValue(vals, validUTF8)
		if e != nil {
			e.attr = key
			return nil, nil, e
		}
		rules = append(rules, match.NewNameRule(a, norm))
		doc[a.Name] = norm
	}
	return rules, doc, nil
}

// RequireSubject allows a leaf whose subject has, for every attribute in attrs, a value among
// those listed. An attribute that may occur only once (cn, c, serial_number) matches nothing when
// the subject holds it more than once, and if one of those values is listed the subject is not a
// mismatch either: [Not] refuses it too (Not(c: RU) refuses C=RU with a second C=US). For the
// other attributes (such as several ou) one listed value suffices.
//
// A value matches only when it is byte for byte a listed one. A value that is not, but equals a
// listed one once the differences X.500 matching ignores are removed, matches nothing and is
// not a mismatch either: [Not] refuses it too (Not(ou: contractors) refuses OU=Contractors). These
// differences are letter case (Unicode simple case folding: "Contractors", "CONTRACTORS", a Kelvin
// sign for k), spaces (leading, trailing or repeated; tab, no-break, ideographic and other Unicode
// spaces), full-width forms of ASCII (U+FF01 to U+FF5E), and the characters RFC 4518 maps to
// nothing (soft hyphen, zero-width space, byte order mark, variation selectors, other format and
// control characters). Equivalences that need Unicode normalisation tables are not recognised:
// composed and decomposed accents, compatibility forms other than full-width ASCII (ligatures,
// superscripts), full case folding (ß and ss); such spellings are different values, which Not
// allows, and look-alike letters of other scripts are different values too. To keep a client out
// whatever its names are spelled, deny its key or certificate ([DenyList]).
func RequireSubject(attrs Attributes) (Policy, error) {
	p, err := buildNamePolicy("subject", attrs)
	return public("RequireSubject", p, err)
}

// RequireIssuer is [RequireSubject] for the issuer name of the leaf (the subject of the CA that
// signed it). A leaf accepted by its pinned fingerprint has no verified issuer and matches
// nothing: its issuer name is whatever its maker wrote. The name is that of any trusted CA: when
// CAs of several owners are trusted, prefer [RequireIssuerThumbprints].
func RequireIssuer(attrs Attributes) (Policy, error) {
	p, err := buildNamePolicy("issuer", attrs)
	return public("RequireIssuer", p, err)
}

// buildNamePolicy builds the matcher of key, "subject" or "issuer".
func buildNamePolicy(key string, attrs Attributes) (Policy, *elemError) {
	rules, doc, err := buildName(attrs)
	if err != nil {
		return nil, err
	}
	r := newRule(key, doc, nil)
	if key == "subject" {
		r.fn3 = func(id *Identity) verdict { return match.MatchName(id.Leaf.Subject.Names, rules) }
		return r, nil
	}
	r.fn3 = func(id *Identity) verdict {
		if id.Pinned {
			return no // no verified issuer: the name is whatever the leaf's maker wrote
		}
		return match.MatchName(id.Leaf.Issuer.Names, rules)
	}
	return r, nil
}

// ---- DNS names -----------------------------------------------------------------------------

// RequireDNSNames allows a leaf with a DNS name SAN matching one of patterns: an exact name
// ("api.example.com"), or "*." followed by a name of at least two labels, matching exactly one
// left-most label ("*.example.com" matches "a.example.com", not "example.com" nor
// "a.b.example.com"). Names compare ASCII case-insensitively; internationalised names must be
// written in their "xn--" form; a wildcard SAN in the certificate itself matches nothing. A name
// with a trailing dot, or a wildcard SAN ("*.example.com", or a partial one such as
// "a*.example.com", which some TLS stacks match), that stands for a listed name is refused under
// [Not] as well. Each SAN costs a few map look-ups, whatever the number of patterns.
func RequireDNSNames(patterns ...string) (Policy, error) {
	p, err := buildDNS(patterns)
	return public("RequireDNSNames", p, err)
}

func buildDNS(patterns []string) (Policy, *elemError) {
	set := new(match.DNSSet)
	doc, err := eachValue(patterns, set.Add)
	if err != nil {
		return nil, err
	}
	r := newRule("dns", doc, nil)
	r.fn3 = func(id *Identity) verdict { return set.Match(id.Leaf.DNSNames) }
	return r, nil
}

// ---- Email addresses -----------------------------------------------------------------------

// RequireEmails allows a leaf with an email address SAN matching one of patterns: an address
// ("alice@example.com"; the local part compares exactly, the domain ASCII case-insensitively), or
// "@example.com" for any mailbox at exactly that domain. An address whose local part differs from
// a listed one only in ASCII case ("Alice") or by quoting ("\"alice\""), which many mail systems
// read as the same mailbox, or whose domain has a trailing dot, does not match and is refused
// under [Not] as well.
func RequireEmails(patterns ...string) (Policy, error) {
	p, err := buildEmail(patterns)
	return public("RequireEmails", p, err)
}

func buildEmail(patterns []string) (Policy, *elemError) {
	set := new(match.EmailSet)
	doc, err := eachValue(patterns, set.Add)
	if err != nil {
		return nil, err
	}
	r := newRule("email", doc, nil)
	r.fn3 = func(id *Identity) verdict { return set.Match(id.Leaf.EmailAddresses) }
	return r, nil
}

// ---- URIs ----------------------------------------------------------------------------------

// RequireURIs allows a leaf with a URI SAN matching one of patterns: an exact URI, or a URI
// prefix followed by '*', matching any remainder ("spiffe://acme.test/ns/prod/*" matches
// "spiffe://acme.test/ns/prod/sa/alice"). A pattern must be an absolute URI in canonical form
// (RFC 3986, section 6): no user info or fragment; host in lower case, without a trailing dot, an
// IPv6 address in its RFC 5952 form; no empty or default port (":443" for https); no escape of an
// unreserved character ("%65" for "e"), other escapes in upper case; no ".", ".." or empty path
// segment; "/" rather than an empty path for http and https; no empty query; a URN's namespace in
// lower case. A pattern that is not is refused with the form to write. '*' is allowed only at the
// end and, in a URI with an authority, only after the '/' that ends the host (so that
// "https://api.example*" cannot match "https://api.example.evil"). A URI whose path holds a "."
// or ".." segment never matches a prefix. A URI SAN that does not match but, in canonical form
// (its escaped slashes read as slashes or not, and for http, https, ws, wss, ftp and file a
// backslash read as '/', as browsers do), would, is refused under [Not] as well. The query compares as written.
// For SPIFFE IDs prefer [RequireSPIFFEIDs], which also checks the ID's syntax.
func RequireURIs(patterns ...string) (Policy, error) {
	p, err := buildURI(patterns)
	return public("RequireURIs", p, err)
}

func buildURI(patterns []string) (Policy, *elemError) {
	set := new(match.URISet)
	doc, err := eachValue(patterns, asWritten(set.Add))
	if err != nil {
		return nil, err
	}
	r := newRule("uri", doc, nil)
	r.fn3 = func(id *Identity) verdict { return set.Match(id.Leaf.URIs) }
	return r, nil
}

// ---- IP addresses --------------------------------------------------------------------------

// RequireIPs allows a leaf with an IP address SAN equal to one of the given addresses or inside
// one of the given prefixes ("10.1.2.3", "2001:db8::/32"). A prefix must have no bits set after
// its length. An IPv4-mapped address or prefix given here means its IPv4 form
// ("::ffff:10.0.0.0/104" is 10.0.0.0/8; a mapped prefix must be at least /96).
//
// A SAN is compared as the certificate encodes it, never unmapped: a 16-byte SAN ::ffff:10.1.2.3
// is an IPv6 address, which crypto/x509 checks against IPv6 name constraints only (a CA excluded
// from 10.0.0.0/8 can issue it). It matches the IPv6 prefixes that contain it, and no IPv4 rule;
// if an IPv4 rule holds its IPv4 form it is undecided, refused under [Not] as well. So is an IPv6
// SAN that embeds an IPv4 address in the other standard ways: NAT64 (64:ff9b::10.1.2.3), 6to4
// (2002:a01:203::/48) and IPv4-compatible (::10.1.2.3). Other translations (Teredo, NAT64 with a
// network-specific prefix) are not recognised.
func RequireIPs(addrsOrPrefixes ...string) (Policy, error) {
	p, err := buildIP(addrsOrPrefixes)
	return public("RequireIPs", p, err)
}

func buildIP(vals []string) (Policy, *elemError) {
	set := new(match.IPSet)
	doc, err := eachValue(vals, set.Add)
	if err != nil {
		return nil, err
	}
	r := newRule("ip", doc, nil)
	r.fn3 = func(id *Identity) verdict { return set.Match(id.Leaf.IPAddresses) }
	return r, nil
}

// ---- SPIFFE IDs ----------------------------------------------------------------------------

// RequireSPIFFEIDs allows a leaf whose SPIFFE ID ([Identity.SPIFFEID]) matches one of patterns:
// an exact ID ("spiffe://acme.test/ns/prod/sa/alice"), any workload of a trust domain
// ("spiffe://acme.test/*") or any ID below a path ("spiffe://acme.test/ns/prod/*", which does not
// match "spiffe://acme.test/ns/prod" itself). Patterns and IDs must follow the SPIFFE ID syntax
// (lowercase trust domain; path segments of letters, digits, '.', '-' and '_', none empty, "." or
// ".."; no trailing '/', percent-encoding, port, user info, query or fragment). An identity whose
// URI SAN is not such an ID has an empty [Identity.SPIFFEID] and matches nothing.
func RequireSPIFFEIDs(patterns ...string) (Policy, error) {
	p, err := buildSPIFFE(patterns)
	return public("RequireSPIFFEIDs", p, err)
}

func buildSPIFFE(patterns []string) (Policy, *elemError) {
	set := new(match.SPIFFESet)
	doc, err := eachValue(patterns, asWritten(set.Add))
	if err != nil {
		return nil, err
	}
	r := newRule("spiffe", doc, nil)
	r.fn3 = func(id *Identity) verdict { return set.Match(id.SPIFFEID, id.Leaf.URIs) }
	return r, nil
}

// ---- Digests -------------------------------------------------------------------------------

// parseDigest is match.ParseDigest with its error as a message, for ParseFingerprint and the
// bindings.
func parseDigest(s string, n int) ([]byte, string) {
	b, err := match.ParseDigest(s, n)
	if err != nil {
		return nil, err.Error()
	}
	return b, ""
}

// digestSet parses every value with parse into a set of digests, written back in lowercase
// hexadecimal.
func digestSet[D [sha1.Size]byte | [sha256.Size]byte](vals []string, parse func(string) ([]byte, error)) (map[D]struct{}, []string, *elemError) {
	set := map[D]struct{}{}
	doc, err := eachValue(vals, func(s string) (string, error) {
		b, err := parse(s)
		if err != nil {
			return "", err
		}
		set[D(b)] = struct{}{}
		return hex.EncodeToString(b), nil
	})
	return set, doc, err
}

// parseSHA256 and parseSHA1 are the digest parsers of digestSet.
func parseSHA256(s string) ([]byte, error) { return match.ParseDigest(s, sha256.Size) }
func parseSHA1(s string) ([]byte, error)   { return match.ParseDigest(s, sha1.Size) }

// RequireThumbprints allows a leaf whose SHA-256 fingerprint (of its DER encoding) is one of
// sha256 (hexadecimal; case, colons and spaces ignored). It costs one map look-up: the fingerprint
// is computed once per verified chain.
func RequireThumbprints(sha256 ...string) (Policy, error) {
	p, err := buildThumbprint(sha256)
	return public("RequireThumbprints", p, err)
}

func buildThumbprint(vals []string) (Policy, *elemError) {
	set, doc, err := digestSet[[sha256.Size]byte](vals, parseSHA256)
	if err != nil {
		return nil, err
	}
	return newRule("thumbprint", doc, func(id *Identity) bool {
		_, ok := set[id.sum]
		return ok
	}), nil
}

// RequireSHA1Thumbprints allows a leaf whose SHA-1 fingerprint is one of sha1 (hexadecimal, as
// Windows and Azure show certificates; case, colons and spaces ignored). Prefer
// [RequireThumbprints]: SHA-1 is kept for existing configurations, and is hashed on each request.
func RequireSHA1Thumbprints(sha1 ...string) (Policy, error) {
	p, err := buildSHA1(sha1)
	return public("RequireSHA1Thumbprints", p, err)
}

func buildSHA1(vals []string) (Policy, *elemError) {
	set, doc, err := digestSet[[sha1.Size]byte](vals, parseSHA1)
	if err != nil {
		return nil, err
	}
	return newRule("sha1", doc, func(id *Identity) bool {
		_, ok := set[sha1.Sum(id.Leaf.Raw)] //nolint:gosec // fingerprint, see above
		return ok
	}), nil
}

// RequireSPKIPins allows a leaf whose public key has one of the given SHA-256 pins: the digest of
// the DER SubjectPublicKeyInfo, in hexadecimal or in base64 (as Envoy's verify_certificate_spki
// and HPKP write it). A pin survives renewals that keep the key.
func RequireSPKIPins(pins ...string) (Policy, error) {
	p, err := buildSPKI(pins)
	return public("RequireSPKIPins", p, err)
}

func buildSPKI(vals []string) (Policy, *elemError) {
	set, doc, err := digestSet[[sha256.Size]byte](vals, match.ParseSHA256Pin)
	if err != nil {
		return nil, err
	}
	return newRule("spki", doc, func(id *Identity) bool {
		_, ok := set[sha256.Sum256(id.Leaf.RawSubjectPublicKeyInfo)]
		return ok
	}), nil
}

// RequireIssuerThumbprints allows a leaf whose issuing CA certificate (the one above the leaf in
// the verified chain) has one of the given SHA-256 fingerprints. A pinned leaf has no issuer in
// its chain and matches nothing, and so does a chain whose second certificate's subject is not the
// leaf's issuer name, or a certificate accepted on a proxy's word
// ([HeaderConfig.DangerouslyTrustProxyVerification]: its chain is the leaf alone). The issuer is
// hashed on each request.
func RequireIssuerThumbprints(sha256 ...string) (Policy, error) {
	p, err := buildIssuerThumbprint(sha256)
	return public("RequireIssuerThumbprints", p, err)
}

func buildIssuerThumbprint(vals []string) (Policy, *elemError) {
	set, doc, err := digestSet[[sha256.Size]byte](vals, parseSHA256)
	if err != nil {
		return nil, err
	}
	r := newRule("issuer_thumbprint", doc, nil)
	r.fn3 = func(id *Identity) verdict {
		if id.Pinned {
			return no // no issuer: the leaf is trusted by itself
		}
		// A verified chain holds the leaf's issuer. A chain forwarded by a proxy whose
		// verification is trusted is not linked by signatures: without a certificate above the
		// leaf that bears its issuer name, the issuer is unknown, which Not must not allow either.
		if len(id.Chain) < 2 || id.Chain[1] == nil || !bytes.Equal(id.Chain[1].RawSubject, id.Leaf.RawIssuer) {
			return undecided
		}
		_, ok := set[sha256.Sum256(id.Chain[1].Raw)]
		return match.Of(ok)
	}
	return r, nil
}

// ---- Serial numbers ------------------------------------------------------------------------

// ParseSerial reads a certificate serial number in the one notation every serial number of this
// package is written in ([RequireSerials], the "serial" key of policy documents, [ParseDenyList]):
// hexadecimal, in one of two forms.
//
//   - "0x" followed by hexadecimal digits: 0x1000. `openssl x509 -serial` prints serial=1000:
//     write 0x1000.
//   - Bytes of two hexadecimal digits separated by colons: 10:00, as `openssl x509 -text`
//     prints long serial numbers.
//
// Digits alone, such as 4096 or 1000, are refused: openssl -serial prints hexadecimal while
// openssl -text and many other tools print small serials in decimal ("4096 (0x1000)": write the
// 0x1000 part), so a bare number could mean either. Hexadecimal digits may be in either case; there
// is no sign, space or other separator; serials of up to 128 bytes can be written. Policies and
// their documents write serials back as 0x followed by lowercase digits.
func ParseSerial(s string) (*big.Int, error) {
	n, err := match.ParseSerial(s)
	if err != nil {
		return nil, fmt.Errorf("mtls: serial number %q: %w", s, err)
	}
	return n, nil
}

// FormatSerial writes a serial number in the notation [ParseSerial] reads: 0x followed by
// lowercase hexadecimal digits, as policies, their documents and the refusal reasons of a
// [DenyList] write serials. A negative number (which ParseSerial refuses) is written -0x1f.
func FormatSerial(n *big.Int) string { return match.FormatSerial(n) }

// RequireSerials allows a leaf whose serial number is one of serials, each in the notation of
// [ParseSerial]: hexadecimal, "0x1000" or "10:00" (digits alone are refused as ambiguous).
func RequireSerials(serials ...string) (Policy, error) {
	p, err := buildSerial(serials)
	return public("RequireSerials", p, err)
}

func buildSerial(vals []string) (Policy, *elemError) {
	set := new(match.SerialSet)
	doc, err := eachValue(vals, set.Add)
	if err != nil {
		return nil, err
	}
	return newRule("serial", doc, func(id *Identity) bool { return set.Has(id.Leaf.SerialNumber) }), nil
}

// ---- Extended key usage --------------------------------------------------------------------

// RequireEKUs allows a leaf that carries one of the given extended key usages, each a name
// (clientAuth, serverAuth, codeSigning, emailProtection, timeStamping, OCSPSigning, any, ...;
// case-insensitive) or a dotted object identifier for a private usage. The usage must be listed
// in the certificate: anyExtendedKeyUsage satisfies only "any".
func RequireEKUs(usages ...string) (Policy, error) {
	p, err := buildEKU(usages)
	return public("RequireEKUs", p, err)
}

func buildEKU(vals []string) (Policy, *elemError) {
	set := new(match.EKUSet)
	doc, err := eachValue(vals, set.Add)
	if err != nil {
		return nil, err
	}
	r := newRule("eku", doc, nil)
	r.fn3 = func(id *Identity) verdict { return set.Match(id.Leaf.ExtKeyUsage, id.Leaf.UnknownExtKeyUsage) }
	return r, nil
}

// ---- Extensions ----------------------------------------------------------------------------

// extensionDoc is the document form of an extension matcher.
type extensionDoc struct {
	OID    string   `json:"oid"`
	Values []string `json:"values,omitempty"`
	DER    []string `json:"der,omitempty"`
}

// RequireExtension allows a leaf that carries the extension oid (dotted). With values, the
// extension's value must also be a single ASN.1 string (UTF8String, PrintableString, IA5String
// or VisibleString) equal to one of them, as Vault's required_extensions compares it.
func RequireExtension(oid string, values ...string) (Policy, error) {
	p, err := buildExtension(extensionDoc{OID: oid, Values: values}, len(values) > 0, false)
	return public("RequireExtension", p, err)
}

// RequireExtensionDER allows a leaf that carries the extension oid with a value (the DER inside
// extnValue) equal to one of derHex, each in hexadecimal (case, colons and spaces ignored).
func RequireExtensionDER(oid string, derHex ...string) (Policy, error) {
	p, err := buildExtension(extensionDoc{OID: oid, DER: derHex}, false, true)
	return public("RequireExtensionDER", p, err)
}

func buildExtension(d extensionDoc, withValues, withDER bool) (Policy, *elemError) {
	oid, oidErr := match.ParseOID(d.OID)
	if oidErr != nil {
		return nil, &elemError{attr: "oid", index: 0, value: d.OID, msg: oidErr.Error()}
	}
	doc := extensionDoc{OID: oid.String()}
	ext := &match.Extension{OID: oid}
	var err *elemError
	switch {
	case withValues:
		doc.Values, err = eachValue(d.Values, func(s string) (string, error) {
			if _, err := validUTF8(s); err != nil {
				return "", err
			}
			ext.AddString(s)
			return s, nil
		})
		if err != nil {
			err.attr = "values"
		}
	case withDER:
		doc.DER, err = eachValue(d.DER, func(s string) (string, error) {
			b, err := match.ParseHex(s)
			if err != nil {
				return "", err
			}
			ext.AddDER(b)
			return hex.EncodeToString(b), nil
		})
		if err != nil {
			err.attr = "der"
		}
	}
	if err != nil {
		return nil, err
	}
	r := newRule("extension", doc, nil)
	r.fn3 = func(id *Identity) verdict { return ext.Match(id.Leaf.Extensions) }
	return r, nil
}

// ---- Validity ------------------------------------------------------------------------------

// RequireMinValidity allows a leaf that remains valid for at least d from now: a strict partner
// can refuse certificates that expire within, say, 72 hours. d must be positive. now is the
// clock; nil means the clock of the middleware that runs the policy ([Config.Now]) wherever a
// [Middleware] runs it (Config.Policy, Config.ShadowPolicy, [Middleware.Require],
// [Middleware.Shadow], at any depth of [All], [Any] and [Not], but not inside a policy of your
// own), and time.Now when Check is called otherwise.
func RequireMinValidity(d time.Duration, now func() time.Time) (Policy, error) {
	if d <= 0 {
		return nil, fmt.Errorf("mtls: RequireMinValidity: duration %v is not positive", d)
	}
	return buildMinValidity(d, now), nil
}

func buildMinValidity(d time.Duration, now func() time.Time) *rule {
	clock := now
	if clock == nil {
		clock = time.Now
	}
	r := newRule("min_validity", d.String(), func(id *Identity) bool {
		return !id.Leaf.NotAfter.Before(clock().Add(d))
	})
	if now == nil {
		r.clocked = func(now func() time.Time) *rule { return buildMinValidity(d, now) }
	}
	return r
}

// ---- Principal -----------------------------------------------------------------------------

// RequirePrincipals allows an identity whose [Identity.Principal], as set by
// [Config.Principals], is one of names; the name "*" allows any resolved principal (and refuses
// anonymous identities). Names compare exactly. Router-wide, the principal is resolved before
// [Config.Policy] runs, so both Config.Policy and [Middleware.Require] can use this matcher.
func RequirePrincipals(names ...string) (Policy, error) {
	p, err := buildPrincipal(names)
	return public("RequirePrincipals", p, err)
}

func buildPrincipal(vals []string) (Policy, *elemError) {
	set := map[string]struct{}{}
	doc, err := eachValue(vals, func(s string) (string, error) {
		set[s] = struct{}{}
		return validUTF8(s)
	})
	if err != nil {
		return nil, err
	}
	_, anyName := set["*"]
	return newRule("principal", doc, func(id *Identity) bool {
		if id.Principal == "" {
			return false
		}
		if anyName {
			return true
		}
		_, ok := set[id.Principal]
		return ok
	}), nil
}
