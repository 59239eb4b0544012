package mtls

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/x509"
	"errors"
	"fmt"
	"math/big"
	"net/http"
	"net/url"
	"strings"
	"sync/atomic"

	"github.com/certgate/mtls/internal/certfile"
	"github.com/certgate/mtls/internal/crl"
	"github.com/certgate/mtls/internal/redact"
)

// DenyList is a local list of revoked certificates, checked before OCSP and CRLs, for revoking a
// certificate at once. A certificate is denied by its SHA-256 fingerprint, by the SHA-256 of its
// public key (every certificate for that key), or by its serial number under one issuer. It is safe
// for concurrent use; [DenyList.Set] and [DenyList.LoadFile] replace the whole list atomically.
type DenyList struct {
	set atomic.Pointer[denySet]
}

// DenyEntry is one entry of a [DenyList]; build it with [DenyCertificate], [DenyKey] or
// [DenySerial].
type DenyEntry struct {
	kind   byte // 'c' certificate, 'k' key, 's' serial
	sum    [sha256.Size]byte
	serial string // DER INTEGER content, for 's'
}

// DenyCertificate denies the certificate whose DER has this SHA-256 fingerprint (see
// [ParseFingerprint]).
func DenyCertificate(sha256Fingerprint [sha256.Size]byte) DenyEntry {
	return DenyEntry{kind: 'c', sum: sha256Fingerprint}
}

// DenyKey denies every certificate whose SubjectPublicKeyInfo DER has this SHA-256 digest (the
// "SPKI pin" of the key, as from `openssl x509 -pubkey -noout | openssl pkey -pubin -outform DER |
// sha256sum`).
func DenyKey(spkiSHA256 [sha256.Size]byte) DenyEntry {
	return DenyEntry{kind: 'k', sum: spkiSHA256}
}

// DenySerial denies the certificate with this serial number issued by the CA whose
// SubjectPublicKeyInfo has the SHA-256 digest issuerSPKISHA256. The issuer is named by its key,
// not its name, so that another CA with the same name is not affected. A pinned certificate has
// no verified issuer and is not matched by serial.
func DenySerial(issuerSPKISHA256 [sha256.Size]byte, serial *big.Int) DenyEntry {
	var buf [crl.MaxSerialLen + 1]byte
	return DenyEntry{kind: 's', sum: issuerSPKISHA256, serial: string(denySerialContent(&buf, serial))}
}

// denySerialContent is crl.SerialContent for serials of any length: a deny list entry must
// match a certificate whose serial is longer than a CRL entry may be.
func denySerialContent(buf *[crl.MaxSerialLen + 1]byte, n *big.Int) []byte {
	if b, ok := crl.SerialContent(buf, n); ok {
		return b
	}
	return crl.IntegerContent(n)
}

type denySet struct {
	certs   map[[sha256.Size]byte]struct{}
	keys    map[[sha256.Size]byte]struct{}
	serials map[[sha256.Size]byte]map[string]struct{}
}

// NewDenyList returns a list holding entries.
func NewDenyList(entries ...DenyEntry) *DenyList {
	d := &DenyList{}
	d.Set(entries...)
	return d
}

// Set replaces the whole list.
func (d *DenyList) Set(entries ...DenyEntry) {
	s := &denySet{}
	for _, e := range entries {
		switch e.kind {
		case 'c':
			if s.certs == nil {
				s.certs = map[[sha256.Size]byte]struct{}{}
			}
			s.certs[e.sum] = struct{}{}
		case 'k':
			if s.keys == nil {
				s.keys = map[[sha256.Size]byte]struct{}{}
			}
			s.keys[e.sum] = struct{}{}
		case 's':
			if s.serials == nil {
				s.serials = map[[sha256.Size]byte]map[string]struct{}{}
			}
			if s.serials[e.sum] == nil {
				s.serials[e.sum] = map[string]struct{}{}
			}
			s.serials[e.sum][e.serial] = struct{}{}
		}
	}
	d.set.Store(s)
}

// Len is the number of entries in force (0 for a nil list).
func (d *DenyList) Len() int {
	if d == nil {
		return 0
	}
	s := d.set.Load()
	if s == nil {
		return 0
	}
	n := len(s.certs) + len(s.keys)
	for _, m := range s.serials {
		n += len(m)
	}
	return n
}

// maxDenyListFile bounds the size of a deny list file.
const maxDenyListFile = 64 << 20

// LoadFile replaces the list with the entries of a file (see [ParseDenyList]) of at most 64 MiB.
// If the file cannot be read or parsed, or is larger, the list in force stays and the error says
// why. So does a file that seems cut short (written in place while it was read): its last line
// has no newline, or it is empty while the list has entries. Write the file to a temporary name
// and rename it, and a list without entries as a comment line.
func (d *DenyList) LoadFile(name string) error {
	return d.loadFile(name, d.Len() == 0)
}

func (d *DenyList) loadFile(name string, emptyOK bool) error {
	data, err := certfile.Read(name, maxDenyListFile)
	if err != nil {
		return fmt.Errorf("mtls: deny list: %w", err)
	}
	entries, err := denyEntries(data, emptyOK)
	if err != nil {
		return fmt.Errorf("mtls: deny list %s: %w", name, err)
	}
	d.Set(entries...)
	return nil
}

// checkDenyListURL accepts only absolute https URLs: a deny list is not signed.
func checkDenyListURL(raw string) error {
	u, err := url.Parse(raw)
	if err != nil {
		return errInvalidURL
	}
	if u.Scheme != "https" || u.Host == "" {
		return fmt.Errorf("%q is not an absolute https URL", reportedURL(raw))
	}
	return nil
}

// reportedURL is how a URL that may carry a secret appears in errors, logs, [Middleware.CRLStatus]
// and [Middleware.ReloadStatus]: the deny list URL, CRL URLs, OCSP responders, and the URLs of
// the certificates' distribution points and AIA. The user information and the fragment are
// dropped, and every value of the query (a signature, a token) is replaced by REDACTED; the
// scheme, host, path and query keys stay, to tell sources apart. A URL that does not parse
// shows as "(an invalid URL)".
func reportedURL(raw string) string { return redact.URL(raw) }

// withoutURL maps an error of url.Parse, http.NewRequest, the HTTP client or a response body to
// text that carries no part of the URL (see redact.FetchError): their messages quote the URL, a
// redirect's Location or the part of a URL that does not parse. The callers name the URL as
// reportedURL does.
func withoutURL(err error) error { return redact.FetchError(err) }

// errInvalidURL is the configuration problem of a URL that does not parse: the parser's error
// would quote part of it, a password perhaps.
var errInvalidURL = errors.New("an invalid URL")

// httpsOnly returns a copy of c that refuses a redirect to any URL but https: a deny list is not
// signed, so only TLS vouches for it. The default client follows no redirect at all.
func httpsOnly(c *http.Client) *http.Client {
	cc := *c
	next := c.CheckRedirect
	cc.CheckRedirect = func(req *http.Request, via []*http.Request) error {
		if req.URL.Scheme != "https" {
			return fmt.Errorf("redirected to a %s URL: a deny list is fetched over https only", req.URL.Scheme)
		}
		if next != nil {
			return next(req, via)
		}
		if len(via) >= 10 {
			return errors.New("stopped after 10 redirects")
		}
		return nil
	}
	return &cc
}

// fetchDenyList downloads and parses the deny list of DenyListURL, bounded like a file. Its
// errors name the URL as reportedURL does.
func (rv *revocation) fetchDenyList(ctx context.Context) ([]DenyEntry, error) {
	fail := func(err error) ([]DenyEntry, error) {
		return nil, fmt.Errorf("mtls: deny list %s: %w", rv.remoteName, err)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, rv.remoteURL, nil)
	if err != nil {
		return fail(withoutURL(err))
	}
	data, err := rv.do(rv.remoteHTTP, req, maxDenyListFile)
	if err != nil {
		return fail(err)
	}
	entries, err := denyEntries(data, false)
	if err != nil {
		return fail(err)
	}
	return entries, nil
}

// denyEntries parses a deny list document about to replace a list in force. A document cut short
// (in transit, or read while it is written in place) is refused: one whose last line has no
// newline, and an empty one unless emptyOK. A list without entries is written as a comment line.
func denyEntries(data []byte, emptyOK bool) ([]DenyEntry, error) {
	switch {
	case len(data) == 0 && !emptyOK:
		return nil, errors.New("empty: a list without entries is written as a comment line (# none)")
	case len(data) > 0 && data[len(data)-1] != '\n':
		return nil, errors.New("the last line does not end with a newline: cut short?")
	}
	return ParseDenyList(data)
}

// ParseDenyList parses a deny list: one entry a line, blank lines and lines starting with # are
// ignored. Digests are hexadecimal, in either case, colons allowed (see [ParseFingerprint]); a
// serial number is written as [ParseSerial] reads it: 0x1000 or 10:00, never digits alone.
//
//	sha256 <certificate fingerprint>
//	spki-sha256 <SHA-256 of the public key's SubjectPublicKeyInfo>
//	serial <SHA-256 of the issuer's SubjectPublicKeyInfo> <serial number: 0x1000 or 10:00>
func ParseDenyList(data []byte) ([]DenyEntry, error) {
	var entries []DenyEntry
	sc := bufio.NewScanner(bytes.NewReader(data))
	for line := 1; sc.Scan(); line++ {
		text := strings.TrimSpace(sc.Text())
		if text == "" || strings.HasPrefix(text, "#") {
			continue
		}
		f := strings.Fields(text)
		bad := func(err error) ([]DenyEntry, error) {
			return nil, fmt.Errorf("line %d: %w", line, err)
		}
		switch {
		case len(f) == 2 && f[0] == "sha256":
			sum, err := ParseFingerprint(f[1])
			if err != nil {
				return bad(err)
			}
			entries = append(entries, DenyCertificate(sum))
		case len(f) == 2 && f[0] == "spki-sha256":
			sum, err := ParseFingerprint(f[1])
			if err != nil {
				return bad(err)
			}
			entries = append(entries, DenyKey(sum))
		case len(f) == 3 && f[0] == "serial":
			sum, err := ParseFingerprint(f[1])
			if err != nil {
				return bad(err)
			}
			n, err := ParseSerial(f[2])
			if err != nil {
				return bad(err)
			}
			entries = append(entries, DenySerial(sum, n))
		default:
			return bad(errors.New("mtls: want \"sha256 HEX\", \"spki-sha256 HEX\" or \"serial ISSUER-SPKI-SHA256 SERIAL\""))
		}
	}
	return entries, sc.Err()
}

// match returns why id is denied, or "".
func (d *DenyList) match(id *Identity, chain bool) string {
	s := d.set.Load()
	if s == nil || s.certs == nil && s.keys == nil && s.serials == nil {
		return ""
	}
	n := 1
	if chain && len(id.Chain) > 1 {
		n = len(id.Chain) - 1
	}
	for i := 0; i < n && i < len(id.Chain); i++ {
		if why := s.matchAt(id, i); why != "" {
			return why
		}
	}
	return ""
}

// matchAt returns why the certificate i of id's chain is denied, or "".
func (s *denySet) matchAt(id *Identity, i int) string {
	c := id.Chain[i]
	if s.certs != nil {
		sum := id.sum
		if i > 0 {
			sum = sha256.Sum256(c.Raw)
		}
		if _, ok := s.certs[sum]; ok {
			return fmt.Sprintf("deny list: certificate %x", sum)
		}
	}
	if s.keys != nil {
		if _, ok := s.keys[sha256.Sum256(c.RawSubjectPublicKeyInfo)]; ok {
			return "deny list: public key of " + clip(c.Subject.String())
		}
	}
	if s.serials == nil || id.Pinned || i+1 >= len(id.Chain) {
		return ""
	}
	m := s.serials[sha256.Sum256(id.Chain[i+1].RawSubjectPublicKeyInfo)]
	if m == nil {
		return ""
	}
	var buf [crl.MaxSerialLen + 1]byte
	if b := denySerialContent(&buf, c.SerialNumber); b != nil {
		if _, ok := m[string(b)]; ok {
			return fmt.Sprintf("deny list: serial %s of %q", FormatSerial(c.SerialNumber), clip(c.Issuer.String()))
		}
	}
	return ""
}

// SPKISHA256 returns the SHA-256 of a certificate's SubjectPublicKeyInfo, as used by [DenyKey]
// and [DenySerial].
func SPKISHA256(c *x509.Certificate) [sha256.Size]byte {
	return sha256.Sum256(c.RawSubjectPublicKeyInfo)
}
