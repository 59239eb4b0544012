package mtls

import (
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"unicode"
	"unicode/utf8"

	"github.com/certgate/mtls/internal/certfile"
	"github.com/certgate/mtls/internal/jsondoc"
	"github.com/certgate/mtls/internal/match"
	"github.com/certgate/mtls/internal/spiffeid"
)

// PrincipalResolver maps a verified identity to the account it stands for ([Identity.Principal]),
// as webMethods binds a certificate to a user and Kong maps one to a consumer. Set one as
// [Config.Principals]. Implementations must be safe for concurrent use and must not modify id.
type PrincipalResolver interface {
	// ResolvePrincipal returns the principal id stands for, or "" when it has no answer. An error
	// refuses the request (403 "policy_denied"): return one only when the answer cannot be
	// decided, never for an unknown certificate.
	ResolvePrincipal(id *Identity) (string, error)
}

// PrincipalResolverFunc adapts a function to [PrincipalResolver].
type PrincipalResolverFunc func(id *Identity) (string, error)

// ResolvePrincipal calls f(id).
func (f PrincipalResolverFunc) ResolvePrincipal(id *Identity) (string, error) { return f(id) }

// PrincipalChain asks its resolvers in order (nil entries are skipped): the first non-empty answer
// wins and the first error refuses the request. The usual order is explicit bindings ([BindingStore]), then an attribute
// rule ([PrincipalFromSubject]), then a tenant or default principal ([StaticPrincipal]). When no
// resolver answers the identity stays anonymous (Principal ""); to refuse such requests instead,
// add [RequirePrincipals]("*") to [Config.Policy].
type PrincipalChain []PrincipalResolver

// ResolvePrincipal asks each resolver in turn.
func (c PrincipalChain) ResolvePrincipal(id *Identity) (string, error) {
	for _, r := range c {
		if r == nil {
			continue
		}
		name, err := r.ResolvePrincipal(id)
		if err != nil || name != "" {
			return name, err
		}
	}
	return "", nil
}

// StaticPrincipal answers name for every identity: the tenant or default principal, last in a
// [PrincipalChain].
func StaticPrincipal(name string) PrincipalResolver { return staticPrincipal(name) }

type staticPrincipal string

func (s staticPrincipal) ResolvePrincipal(*Identity) (string, error) { return string(s), nil }

// PrincipalWhen asks r only for identities that p allows, such as "the CN is the account name,
// for certificates of the partner CA". For the others it has no answer. It panics if p or r is
// nil, as a programming error found at start-up.
func PrincipalWhen(p Policy, r PrincipalResolver) PrincipalResolver {
	if p == nil || r == nil {
		panic("mtls: PrincipalWhen called with a nil policy or resolver")
	}
	return principalWhen{p, r}
}

type principalWhen struct {
	p Policy
	r PrincipalResolver
}

func (w principalWhen) ResolvePrincipal(id *Identity) (string, error) {
	if w.p.Check(id) != nil {
		return "", nil
	}
	return w.r.ResolvePrincipal(id)
}

// bindingStores returns the BindingStores r consults: r itself, or those of a PrincipalChain
// or PrincipalWhen, at any depth, each once.
func bindingStores(r PrincipalResolver, out []*BindingStore) []*BindingStore {
	switch r := r.(type) {
	case *BindingStore:
		if r != nil && !slices.Contains(out, r) {
			out = append(out, r)
		}
	case PrincipalChain:
		for _, c := range r {
			out = bindingStores(c, out)
		}
	case principalWhen:
		out = bindingStores(r.r, out)
	}
	return out
}

var errNoLeafPrincipal = errors.New("mtls: no verified certificate to map")

// errNilBindings refuses instead of panicking when a nil store is used, as happens when the
// error of NewBindingStore or NewBindings is ignored.
var errNilBindings = errors.New("mtls: nil bindings (was an error from NewBindingStore or NewBindings ignored?)")

// PrincipalFromSubject answers the value of one attribute of the leaf's subject (an attribute
// name as in [Attributes], such as "cn" when the CN is the account name). A subject without the
// attribute has no answer; one holding it more than once, or whose value is empty or not a
// string (an INTEGER, an OCTET STRING or any other value that does not decode to text, as a
// certificate built in code may hold), is not UTF-8, starts or ends with a space, or holds control, format or line-separator characters (such as a
// right-to-left override) or spaces and blanks other than U+0020 (a no-break space, a Hangul
// filler, the braille blank), is refused rather than guessed at. The value is not normalised
// otherwise: "Alice" and "alice" are two principals, and so are names written with look-alike
// letters of other scripts (a Cyrillic "а" for a Latin "a"); bind such accounts explicitly
// ([Bindings]) when that matters.
//
// The attribute is read from the subject as parsed from the certificate (pkix.Name.Names), as
// the subject policies read it. A leaf built in code whose subject has no Names but sets the
// fields of pkix.Name (CommonName, Organization, ExtraNames and the others) is refused: the
// value those fields would encode is not read in two ways.
func PrincipalFromSubject(attr string) (PrincipalResolver, error) {
	a, err := match.LookupAttr(attr)
	if err != nil {
		return nil, fmt.Errorf("mtls: PrincipalFromSubject: %q: %w", attr, err)
	}
	errMany := fmt.Errorf("mtls: subject has more than one %s", a.Name)
	errCtl := fmt.Errorf("mtls: subject %s is not a plain account name: %s", a.Name, errPrincipalText)
	errType := fmt.Errorf("mtls: subject %s is not a string", a.Name)
	errEmpty := fmt.Errorf("mtls: subject %s is empty", a.Name)
	return PrincipalResolverFunc(func(id *Identity) (string, error) {
		if !hasLeaf(id) {
			return "", errNoLeafPrincipal
		}
		if len(id.Leaf.Subject.Names) == 0 && unparsedSubject(&id.Leaf.Subject) {
			return "", errUnparsedSubject
		}
		var found string
		n, text := 0, true
		for _, atv := range id.Leaf.Subject.Names {
			if atv.Type.Equal(a.OID) {
				n++
				found, text = atv.Value.(string)
			}
		}
		switch {
		case n > 1:
			return "", errMany
		case !text: // a value that is there but unreadable must not read as "no answer"
			return "", errType
		case n == 1 && found == "": // nor one that is there but empty
			return "", errEmpty
		case found != "" && !plainPrincipal(found):
			return "", errCtl
		}
		return found, nil
	}), nil
}

var errUnparsedSubject = errors.New("mtls: subject fields set without their parsed Names: the leaf was not parsed from a certificate")

// unparsedSubject says whether n sets any field of its own (the fields a parsed certificate fills
// from Names): a subject built in code.
func unparsedSubject(n *pkix.Name) bool {
	return n.CommonName != "" || n.SerialNumber != "" || len(n.ExtraNames) > 0 || len(n.Country) > 0 ||
		len(n.Organization) > 0 || len(n.OrganizationalUnit) > 0 || len(n.Locality) > 0 ||
		len(n.Province) > 0 || len(n.StreetAddress) > 0 || len(n.PostalCode) > 0
}

// errPrincipalText says what plainPrincipal refuses.
const errPrincipalText = "control characters, invisible characters, spaces other than U+0020, " +
	"leading or trailing spaces, or invalid UTF-8"

// plainPrincipal reports whether name can be shown as an account name without posing as another:
// non-empty valid UTF-8, no leading or trailing space, no invisible rune.
func plainPrincipal(name string) bool {
	return name != "" && utf8.ValidString(name) && name[0] != ' ' && name[len(name)-1] != ' ' &&
		strings.IndexFunc(name, invisible) < 0
}

// invisible reports runes that do not show as themselves: control and format characters
// (bidirectional overrides, zero-width joiners), line and paragraph separators, and spaces and
// blanks other than U+0020 (no-break and ideographic spaces, Hangul fillers, the braille blank).
func invisible(r rune) bool {
	switch r {
	case ' ':
		return false
	case 0x115f, 0x1160, 0x2800, 0x3164, 0xffa0:
		return true
	}
	return unicode.IsControl(r) || unicode.IsSpace(r) || unicode.In(r, unicode.Cf, unicode.Zl, unicode.Zp, unicode.Zs)
}

// PrincipalFromSPIFFEID answers the identity's SPIFFE ID, when it has a valid one.
func PrincipalFromSPIFFEID() PrincipalResolver {
	return PrincipalResolverFunc(func(id *Identity) (string, error) {
		if id == nil || spiffeid.Validate(id.SPIFFEID) != nil {
			return "", nil
		}
		return id.SPIFFEID, nil
	})
}

// Binding ties certificates to a principal explicitly.
type Binding struct {
	// Principal is the account name. Required.
	Principal string
	// SHA256 binds the one certificate with this SHA-256 fingerprint (hexadecimal; case, colons
	// and spaces ignored).
	SHA256 string
	// Certificate binds every certificate with this certificate's issuer name and public key, so
	// that a renewal that keeps the key keeps the binding.
	Certificate *x509.Certificate
}

// Bindings is an immutable set of explicit bindings; it answers by fingerprint first, then by
// issuer name and public key. Build one with [NewBindings], or load one from files with
// [BindingStore].
type Bindings struct {
	byThumb  map[[32]byte]string
	byKey    map[string]map[string]string // raw issuer name -> raw SubjectPublicKeyInfo -> principal
	certSums map[[32]byte]string          // the fingerprints of the certificates bound by key
	n        int
	gen      uint64 // the BindingStore generation that swapped it in; 0 outside a store
}

func newBindings() *Bindings {
	return &Bindings{byThumb: map[[32]byte]string{}, byKey: map[string]map[string]string{}, certSums: map[[32]byte]string{}}
}

// NewBindings checks bs and returns the set. A certificate bound to two different principals is an
// error, whether by the same form or by both (its fingerprint to one, itself to another). A
// principal must be a plain account name, as [PrincipalFromSubject] requires.
func NewBindings(bs ...Binding) (*Bindings, error) {
	b := newBindings()
	for i, x := range bs {
		if err := b.add(x); err != nil {
			return nil, fmt.Errorf("mtls: binding %d: %w", i, err)
		}
	}
	return b, nil
}

func (b *Bindings) add(x Binding) error {
	if !plainPrincipal(x.Principal) {
		return fmt.Errorf("principal %q is empty or holds %s", x.Principal, errPrincipalText)
	}
	if (x.SHA256 == "") == (x.Certificate == nil) {
		return errors.New("set exactly one of SHA256 and Certificate")
	}
	if x.SHA256 != "" {
		d, msg := parseDigest(x.SHA256, 32)
		if msg != "" {
			return fmt.Errorf("sha256 %q: %s", x.SHA256, msg)
		}
		k := [32]byte(d)
		for _, m := range []map[[32]byte]string{b.byThumb, b.certSums} {
			if old, ok := m[k]; ok && old != x.Principal {
				return fmt.Errorf("certificate %s is bound to both %q and %q", hex.EncodeToString(d), old, x.Principal)
			}
		}
		b.byThumb[k] = x.Principal
		b.n++
		return nil
	}
	c := x.Certificate
	sum := sha256.Sum256(c.Raw)
	if old, ok := b.byThumb[sum]; ok && old != x.Principal {
		return fmt.Errorf("certificate %q (issuer %q) is bound to both %q, by its fingerprint, and %q", clip(c.Subject.String()), clip(c.Issuer.String()), old, x.Principal)
	}
	inner := b.byKey[string(c.RawIssuer)]
	if inner == nil {
		inner = map[string]string{}
		b.byKey[string(c.RawIssuer)] = inner
	}
	if old, ok := inner[string(c.RawSubjectPublicKeyInfo)]; ok && old != x.Principal {
		return fmt.Errorf("the key of %q (issuer %q) is bound to both %q and %q", clip(c.Subject.String()), clip(c.Issuer.String()), old, x.Principal)
	}
	inner[string(c.RawSubjectPublicKeyInfo)] = x.Principal
	b.certSums[sum] = x.Principal
	b.n++
	return nil
}

// ResolvePrincipal answers the principal bound to the leaf, or "".
func (b *Bindings) ResolvePrincipal(id *Identity) (string, error) {
	if b == nil {
		return "", errNilBindings
	}
	if !hasLeaf(id) {
		return "", errNoLeafPrincipal
	}
	if p, ok := b.byThumb[id.sum]; ok {
		return p, nil
	}
	if inner := b.byKey[string(id.Leaf.RawIssuer)]; inner != nil {
		return inner[string(id.Leaf.RawSubjectPublicKeyInfo)], nil
	}
	return "", nil
}

// Len is the number of bindings.
func (b *Bindings) Len() int { return b.n }

// BindingStore holds bindings loaded from the file system, reloadable at run time:
//
//   - a directory of PEM files (*.pem, *.crt, *.cer): each file binds the certificates it holds
//     to the principal named by the file (alice.pem binds to "alice"), by issuer name and public
//     key, so that a renewal with the same key keeps the binding. CA certificates (the rest of a
//     full chain) are skipped; a PEM block that does not decode fails the load. Other files are
//     ignored.
//   - a JSON file mapping principals to SHA-256 fingerprints:
//     {"alice": ["3f1a…"], "partner-a": ["9bc0…", "77de…"]}
//
// Call [BindingStore.Reload] (on SIGHUP, or when the files change) to read them again. A store
// that is [Config.Principals] (or part of a [PrincipalChain] or [PrincipalWhen] there) is also
// read again by [Middleware.Reload], which swaps its bindings in together with the trust: a
// request then always resolves its principal with the bindings loaded with the trust that
// verified it. A direct Reload swaps the store's bindings in alone, at once, for every request.
type BindingStore struct {
	path   string
	mu     sync.Mutex // serialises Reload and swaps
	cur    atomic.Pointer[Bindings]
	gen    uint64        // generation of the last swap, under mu
	direct atomic.Uint64 // generation of the last direct Reload
}

// NewBindingStore loads the bindings at path, a directory of PEM files or a JSON file.
func NewBindingStore(path string) (*BindingStore, error) {
	s := &BindingStore{path: path}
	if err := s.Reload(); err != nil {
		return nil, err
	}
	return s, nil
}

// Reload reads the bindings again and swaps them in atomically. On error the bindings in force
// stay and the error says why.
func (s *BindingStore) Reload() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	b, err := loadBindings(s.path)
	if err != nil {
		return err
	}
	s.direct.Store(s.swapLocked(b))
	return nil
}

// swap puts b, loaded by a middleware, in force.
func (s *BindingStore) swap(b *Bindings) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.swapLocked(b)
}

// swapLocked puts b in force and returns its generation. s.mu is held.
func (s *BindingStore) swapLocked(b *Bindings) uint64 {
	s.gen++
	b.gen = s.gen
	s.cur.Store(b)
	return b.gen
}

// ResolvePrincipal answers from the bindings loaded with the identity's trust (see
// [Middleware.Reload]), unless a direct Reload came later; otherwise from the bindings in force.
func (s *BindingStore) ResolvePrincipal(id *Identity) (string, error) {
	if s == nil {
		return "", errNilBindings
	}
	b := s.cur.Load()
	if id != nil {
		if loaded := id.bindings[s]; loaded != nil && loaded.gen >= s.direct.Load() {
			b = loaded
		}
	}
	return b.ResolvePrincipal(id)
}

// Len is the number of bindings in force.
func (s *BindingStore) Len() int { return s.cur.Load().Len() }

// Limits of a binding file.
const (
	maxBindingFile  = 1 << 20
	maxBindingDepth = 32
)

func loadBindings(path string) (*Bindings, error) {
	fi, err := os.Stat(path)
	if err != nil {
		return nil, fmt.Errorf("mtls: bindings: %w", err)
	}
	if fi.IsDir() {
		return loadBindingDir(path)
	}
	doc, err := readLimited(path)
	if err != nil {
		return nil, err
	}
	return parseBindingJSON(path, doc)
}

func readLimited(path string) ([]byte, error) {
	b, err := certfile.Read(path, maxBindingFile)
	if err != nil {
		return nil, fmt.Errorf("mtls: bindings: %w", err)
	}
	return b, nil
}

func parseBindingJSON(path string, doc []byte) (*Bindings, error) {
	v, err := jsondoc.Decode(doc, maxBindingDepth)
	if err != nil {
		return nil, fmt.Errorf("mtls: bindings %s: %w", path, err)
	}
	if v.Kind != jsondoc.Object {
		return nil, fmt.Errorf("mtls: bindings %s: $: expected an object of principal to SHA-256 fingerprints, found %s", path, v.TypeName())
	}
	b := newBindings()
	for i, principal := range v.Keys {
		at := jsondoc.KeyPath("$", principal)
		list, err := v.Vals[i].Strings(at)
		if err != nil {
			return nil, fmt.Errorf("mtls: bindings %s: %w", path, err)
		}
		for j, fp := range list {
			if err := b.add(Binding{Principal: principal, SHA256: fp}); err != nil {
				return nil, fmt.Errorf("mtls: bindings %s: %s: %w", path, jsondoc.IndexPath(at, j), err)
			}
		}
	}
	return b, nil
}

// isBindingFile says whether a binding store's directory entry is one of its files: a PEM file
// (.pem, .crt, .cer), not hidden. A named pipe or a device with such a name is one, and is
// refused when read (certfile.Read), rather than skipped.
func isBindingFile(e os.DirEntry) bool {
	name := e.Name()
	ext := strings.ToLower(filepath.Ext(name))
	return !e.IsDir() && !strings.HasPrefix(name, ".") && slices.Contains([]string{".pem", ".crt", ".cer"}, ext)
}

func loadBindingDir(dir string) (*Bindings, error) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("mtls: bindings: %w", err)
	}
	b := newBindings()
	for _, e := range entries {
		if !isBindingFile(e) {
			continue
		}
		name := e.Name()
		file := filepath.Join(dir, name)
		data, err := readLimited(file)
		if err != nil {
			return nil, err
		}
		principal := strings.TrimSuffix(name, filepath.Ext(name))
		certs, err := certfile.Certificates(data)
		if err != nil {
			return nil, fmt.Errorf("mtls: bindings %s: %w", file, err)
		}
		n := 0
		for _, c := range certs {
			if c.IsCA { // the rest of a full chain: a CA certificate is never a client's
				continue
			}
			if err := b.add(Binding{Principal: principal, Certificate: c}); err != nil {
				return nil, fmt.Errorf("mtls: bindings %s: %w", file, err)
			}
			n++
		}
		if n == 0 {
			return nil, fmt.Errorf("mtls: bindings %s: no PEM certificate (no client certificate: CA certificates are skipped)", file)
		}
	}
	return b, nil
}
