package mtls

import (
	"bytes"
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"encoding/hex"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync/atomic"
	"time"
	"unicode/utf8"

	"github.com/certgate/mtls/internal/certfile"
	"golang.org/x/crypto/cryptobyte"
	cbasn1 "golang.org/x/crypto/cryptobyte/asn1"
)

// trustConfig is what trust is built from; load builds it anew (at New and on Reload).
type trustConfig struct {
	roots             *x509.CertPool
	rootFiles         []string
	intermediates     *x509.CertPool
	intermediateFiles []string
	pins              []string
	pinFiles          []string
	maxDepth          int
	allowNoEKU        bool // Config.DangerouslyAllowNoExtKeyUsage
}

// trust is an immutable set of anchors: it is replaced whole, never changed.
type trust struct {
	roots         *x509.CertPool // nil: no CA is trusted (pins only)
	intermediates *x509.CertPool // never nil
	pins          map[[sha256.Size]byte]struct{}
	maxDepth      int
	allowNoEKU    bool // a leaf without the extended key usage extension is accepted
}

// load builds the trust. Its problems are *ConfigErrors naming the field (a reload reports them
// the same way).
func (tc *trustConfig) load() (*trust, error) {
	var p problems
	t := &trust{maxDepth: tc.maxDepth, allowNoEKU: tc.allowNoEKU, pins: map[[sha256.Size]byte]struct{}{}}
	tc.loadRoots(&p, t)
	tc.loadIntermediates(&p, t)
	tc.loadPins(&p, t)
	if t.roots == nil && len(tc.pins) == 0 && len(tc.pinFiles) == 0 {
		p.addf("RootCAs", "no trust anchor: set RootCAs, RootCAFiles, PinnedSHA256 or PinnedSHA256Files")
	}
	if err := p.err(); err != nil {
		return nil, err
	}
	return t, nil
}

// loadRoots puts the configured roots, and those of the root files, into t.
func (tc *trustConfig) loadRoots(p *problems, t *trust) {
	if tc.roots != nil || len(tc.rootFiles) > 0 {
		t.roots = x509.NewCertPool()
		if tc.roots != nil {
			t.roots = tc.roots.Clone()
		}
	}
	for i, f := range tc.rootFiles {
		field := fmt.Sprintf("RootCAFiles[%d]", i)
		certs, err := readPEMCertificates(f)
		if err != nil {
			p.add(field, err)
			continue
		}
		for _, c := range certs {
			// RFC 5280 requires CA:TRUE in every v3 CA certificate; old v1 roots have no extensions.
			if !c.IsCA && c.Version >= 3 {
				p.addf(field, "%s: %q is not a CA certificate (to accept this one certificate, pin its SHA-256 fingerprint)", f, clip(c.Subject.String()))
				continue
			}
			if weakKey(p, field, f, c) {
				continue
			}
			t.roots.AddCert(c)
		}
	}
}

// loadIntermediates puts the configured intermediates, and those of the intermediate files,
// into t.
func (tc *trustConfig) loadIntermediates(p *problems, t *trust) {
	t.intermediates = x509.NewCertPool()
	if tc.intermediates != nil {
		t.intermediates = tc.intermediates.Clone()
	}
	for i, f := range tc.intermediateFiles {
		field := fmt.Sprintf("IntermediateFiles[%d]", i)
		certs, err := readPEMCertificates(f)
		if err != nil {
			p.add(field, err)
			continue
		}
		for _, c := range certs {
			if !weakKey(p, field, f, c) {
				t.intermediates.AddCert(c)
			}
		}
	}
}

// loadPins puts the configured pins, and those of the pin files, into t.
func (tc *trustConfig) loadPins(p *problems, t *trust) {
	for i, s := range tc.pins {
		sum, err := ParseFingerprint(s)
		if err != nil {
			p.add(fmt.Sprintf("PinnedSHA256[%d]", i), err)
			continue
		}
		t.pins[sum] = struct{}{}
	}
	for i, f := range tc.pinFiles {
		sums, err := readPinFile(f)
		if err != nil {
			p.add(fmt.Sprintf("PinnedSHA256Files[%d]", i), err)
			continue
		}
		for _, sum := range sums {
			t.pins[sum] = struct{}{}
		}
	}
}

// weakKey reports a configured CA certificate of file f whose key is outside the bounds that
// presented keys are held to (screenKey): a chain is only as strong as its weakest key.
func weakKey(p *problems, field, f string, c *x509.Certificate) bool {
	d := screenKey(c, defaultScreenLimits)
	if d != "" {
		p.addf(field, "%s: %q: %s, as for presented keys", f, clip(c.Subject.String()), d)
	}
	return d != ""
}

// Fingerprint returns the lowercase hex SHA-256 fingerprint of a certificate's DER encoding, the
// form of [Identity.SHA256] and of [Config.PinnedSHA256].
func Fingerprint(c *x509.Certificate) string {
	sum := sha256.Sum256(c.Raw)
	return hex.EncodeToString(sum[:])
}

// ParseFingerprint parses a SHA-256 fingerprint written as hex, in either case, with or without
// colons or spaces between bytes (as openssl and Windows print them). The line that
// `openssl x509 -noout -fingerprint -sha256` prints is accepted as it is: its label,
// "sha256 Fingerprint=" (or "SHA256 Fingerprint=", before OpenSSL 3), is dropped.
func ParseFingerprint(s string) ([sha256.Size]byte, error) {
	var sum [sha256.Size]byte
	digits := strings.TrimSpace(s)
	for _, label := range opensslFingerprintLabels {
		if rest, ok := strings.CutPrefix(digits, label); ok {
			digits = rest
			break
		}
	}
	b, msg := parseDigest(digits, sha256.Size)
	if msg != "" {
		return sum, fmt.Errorf("mtls: fingerprint %q: %s", s, msg)
	}
	copy(sum[:], b)
	return sum, nil
}

// opensslFingerprintLabels are the labels before the digits of a SHA-256 fingerprint printed by
// OpenSSL 3 and by earlier versions.
var opensslFingerprintLabels = []string{"sha256 Fingerprint=", "SHA256 Fingerprint="}

// readPinFile reads a file of pins of at most maxTrustFile bytes (see [Config.PinnedSHA256Files]).
func readPinFile(name string) ([][sha256.Size]byte, error) {
	data, err := certfile.Read(name, maxTrustFile)
	if err != nil {
		return nil, err
	}
	sums, err := parsePins(data)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	return sums, nil
}

// parsePins parses the lines of a pin file, each a fingerprint as [ParseFingerprint] reads it
// (hex, or as openssl prints it); blank lines and lines starting with # are skipped.
func parsePins(data []byte) ([][sha256.Size]byte, error) {
	var sums [][sha256.Size]byte
	for n, line := range strings.Split(string(data), "\n") {
		line = strings.TrimSpace(line)
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		sum, err := ParseFingerprint(line)
		if err != nil {
			return nil, fmt.Errorf("line %d: %w", n+1, err)
		}
		sums = append(sums, sum)
	}
	return sums, nil
}

// maxTrustFile bounds the size of a root or intermediate file.
const maxTrustFile = 16 << 20

// readPEMCertificates reads every CERTIFICATE block of a PEM file of at most maxTrustFile bytes
// (see [ParsePEMCertificates]).
func readPEMCertificates(name string) ([]*x509.Certificate, error) {
	data, err := certfile.Read(name, maxTrustFile)
	if err != nil {
		return nil, err
	}
	certs, err := ParsePEMCertificates(data)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	return certs, nil
}

// ParsePEMCertificates parses every CERTIFICATE block of PEM data. Text between blocks (as in
// bundles that comment each certificate) is allowed; a block of another type, a certificate that
// does not parse, a block that does not decode, or data without any certificate is an error.
func ParsePEMCertificates(data []byte) ([]*x509.Certificate, error) {
	return certfile.Certificates(data)
}

// verify checks a presented chain (leaf first, screened) at time now and returns the verified
// chain, leaf first and anchor last, and whether the leaf was accepted by its pin.
func (t *trust) verify(presented []*x509.Certificate, now time.Time) ([]*x509.Certificate, bool, error) {
	chain, pinned, _, err := t.verifyPresented(presented, now)
	return chain, pinned, err
}

// verifyPresented is verify, and also says whether every presented certificate is vouched for:
// part of the verified chain, or a CA certificate that verifies up to a root. Certificates that
// are not could be varied at will by the client.
func (t *trust) verifyPresented(presented []*x509.Certificate, now time.Time) ([]*x509.Certificate, bool, bool, error) {
	leaf := presented[0]
	fail := func(kind error, detail string, cause error) ([]*x509.Certificate, bool, bool, error) {
		e := newError(kind, detail, cause)
		e.Leaf = leaf
		return nil, false, false, e
	}
	if err := t.checkPresented(presented, now); err != nil {
		return nil, false, false, err
	}
	if _, ok := t.pins[sha256.Sum256(leaf.Raw)]; ok {
		return []*x509.Certificate{leaf}, true, len(presented) == 1, nil
	}
	if t.roots == nil {
		return fail(ErrUntrusted, "the certificate is not pinned and no CA is trusted", nil)
	}

	a := t.admit(presented, now)
	chains, err := leaf.Verify(x509.VerifyOptions{
		Roots:         t.roots,
		Intermediates: a.pool,
		CurrentTime:   now,
		KeyUsages:     []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	})
	if err != nil {
		if refused := a.refused; refused != nil && isUnknownAuthority(err) {
			// The leaf's issuer is likely the presented CA that was not admitted: say why.
			detail := t.explain(presented, refused.err, now)
			if detail == "" {
				detail = fmt.Sprintf("presented CA certificate %q does not verify", clip(refused.cert.Subject.String()))
			}
			return fail(classifyVerifyError(refused.err, now), detail, refused.err)
		}
		return fail(classifyVerifyError(err, now), t.explain(presented, err, now), err)
	}
	best, detail := t.pick(chains)
	if best == nil {
		return fail(ErrUntrusted, detail, nil)
	}
	vouched := true
	for i, p := range presented[1:] {
		if !a.vouched[i+1] && !slices.ContainsFunc(best, func(c *x509.Certificate) bool { return c == p || bytes.Equal(c.Raw, p.Raw) }) {
			vouched = false
			break
		}
	}
	return best, false, vouched, nil
}

// vouches says whether an anchor of t vouches for the presented leaf, whatever its validity and
// usage: it is pinned, or its signatures lead up to a root valid at now, through the configured
// intermediates and the presented CA certificates that admit takes, the presented certificates'
// own validity periods aside, for any usage. So a leaf that expired, or that predates a renewal
// of its CA's certificate, is vouched for. The signatures it checks are those verify would check:
// a forger's chain costs no more here than there.
func (t *trust) vouches(presented []*x509.Certificate, now time.Time) bool {
	leaf := presented[0]
	if _, ok := t.pins[sha256.Sum256(leaf.Raw)]; ok {
		return true
	}
	if t.roots == nil {
		return false
	}
	// Copies valid whenever: the signatures cover the raw TBSCertificate, which is unchanged.
	timeless := make([]*x509.Certificate, len(presented))
	for i, c := range presented {
		cp := *c
		cp.NotBefore, cp.NotAfter = time.Time{}, time.Date(9999, 12, 31, 23, 59, 59, 0, time.UTC)
		timeless[i] = &cp
	}
	_, err := timeless[0].Verify(x509.VerifyOptions{
		Roots:         t.roots,
		Intermediates: t.admit(timeless, now).pool,
		CurrentTime:   now,
		KeyUsages:     []x509.ExtKeyUsage{x509.ExtKeyUsageAny},
	})
	return err == nil
}

// pick returns the verified chain to accept: of those whose every CA key meets the bounds of
// presented keys (screenKey; a configured pool may hold weaker ones), the one with the fewest CA
// certificates counted against the depth bound (chainDepth), then the shortest, then the first by
// the bytes of its certificates (compareChains), if that is within the bound. Otherwise it returns
// nil and why. The choice depends only on the set of chains, never on the order x509 found them
// in, which follows the order of the presented certificates: the same certificates in any order
// give the same identity, as the cache, which keys them as a set, assumes.
func (t *trust) pick(chains [][]*x509.Certificate) ([]*x509.Certificate, string) {
	var best []*x509.Certificate
	depth, weak := 0, ""
	for _, c := range chains {
		if d := weakCA(c); d != "" {
			if weak == "" {
				weak = d
			}
			continue
		}
		if n := chainDepth(c); best == nil || n < depth || n == depth && (len(c) < len(best) || len(c) == len(best) && compareChains(c, best) < 0) {
			best, depth = c, n
		}
	}
	switch {
	case best == nil:
		return nil, weak
	case depth > t.maxDepth:
		return nil, fmt.Sprintf("chain has %d CA certificates, at most %d allowed", depth, t.maxDepth)
	}
	return best, ""
}

// compareChains orders verified chains of one length by the DER of their certificates, leaf
// first.
func compareChains(a, b []*x509.Certificate) int {
	for i := range min(len(a), len(b)) {
		if d := bytes.Compare(a[i].Raw, b[i].Raw); d != 0 {
			return d
		}
	}
	return len(a) - len(b)
}

// weakCA says which CA certificate of a verified chain has a key outside the bounds presented
// keys are held to, or "". Presented and file-configured CAs were checked before: only a
// certificate of a configured pool (RootCAs, Intermediates) can be found here.
func weakCA(chain []*x509.Certificate) string {
	for _, c := range chain[1:] {
		if d := screenKey(c, defaultScreenLimits); d != "" {
			return fmt.Sprintf("the chain rests on configured CA certificate %q, whose key is refused: %s "+
				"(remove it from RootCAs or Intermediates, or replace it)", clip(c.Subject.String()), d)
		}
	}
	return ""
}

// chainDepth counts the CA certificates of a verified chain (leaf first, anchor last) that count
// against [Config.MaxChainDepth]: the anchor, and every certificate between it and the leaf but
// one self-issued certificate of each name. A self-issued certificate, such as the one a CA
// renewing its key under the same name issues to link the new key to the old, does not lengthen
// the path (RFC 5280 6.1.4 (l) and (m)); but self-issued is a matter of names only, so a CA could
// stack CAs of its own name, each of a new key, under itself. One exemption per name allows a
// rollover's link certificate, and counts every further certificate of that name.
func chainDepth(chain []*x509.Certificate) int {
	if len(chain) < 2 {
		return 0
	}
	n := 1
	inner := chain[1 : len(chain)-1]
	for i, c := range inner {
		if !selfIssued(c) || slices.ContainsFunc(inner[:i], func(p *x509.Certificate) bool {
			return selfIssued(p) && bytes.Equal(p.RawSubject, c.RawSubject)
		}) {
			n++
		}
	}
	return n
}

// selfIssued says whether c names itself as its issuer.
func selfIssued(c *x509.Certificate) bool { return bytes.Equal(c.RawSubject, c.RawIssuer) }

// admission is what admit found of the presented CA certificates.
type admission struct {
	pool    *x509.CertPool // the configured intermediates and the admitted candidates
	refused *refusal       // a candidate left out, if any, and why
	vouched []bool         // by presented index: a CA certificate that verifies up to a root
}

// admit returns the configured intermediates, with those presented CA certificates that verify
// as certificates of their own up to a root, through the configured intermediates and the
// presented ones admitted before them. Chain building from the leaf then never checks a
// signature with a key that only the client vouches for: the keys it uses were chosen by the
// operator or certified by a trusted CA, so that a forged chain costs no more than a check of
// each of its CA certificates against the anchors. Only the candidates linked to the leaf by
// names (its issuer, their issuers...) are tried, farthest from the leaf first (and at one
// distance, in the order of their bytes), as a chain is admitted from the top down; a candidate
// that fails is tried again only once a candidate that may be its issuer (by name, and by key
// identifier when both have one: mayIssue) was admitted after it was tried, so that the outcome
// does not depend on the order of the presented certificates, and junk costs one try unless the
// PKI's own certificates come with it. Several copies of one CA (cross-signed by different
// issuers) may all be admitted, but of copies that differ only by serial number and validity
// (reissued) only the first that verifies; so may a self-issued one (a CA's new key certified
// by its old one, or the reverse), but not one that is the same CA as its own issuer (a copy of
// an anchor), which would only make every candidate naming it be checked twice.
func (t *trust) admit(presented []*x509.Certificate, now time.Time) admission {
	ad := admitting{t: t, presented: presented, now: now,
		a:    admission{pool: t.intermediates, vouched: make([]bool, len(presented))},
		errs: make([]error, len(presented)), tried: make([]int, len(presented))}
	linked := linkedCandidates(presented)
	pending := linked
	for first := true; len(pending) > 0; first = false { // each pass admits one more, or is the last
		before := len(ad.admitted)
		pending = ad.pass(pending, first)
		if len(ad.admitted) == before {
			break
		}
	}
	a := ad.a
	for _, i := range pending {
		// Keep the most telling reason: an expired CA, say, rather than one whose own issuer
		// was left out.
		if err := ad.errs[i]; err != nil && (a.refused == nil || isUnknownAuthority(a.refused.err) && !isUnknownAuthority(err)) {
			a.refused = &refusal{cert: presented[i], err: err}
		}
	}
	for i := 1; i < len(presented); i++ { // second copies of a certificate fare as the first
		if !a.vouched[i] {
			a.vouched[i] = slices.ContainsFunc(linked, func(j int) bool { return a.vouched[j] && bytes.Equal(presented[j].Raw, presented[i].Raw) })
		}
	}
	return a
}

// linkedCandidates returns the indexes of the presented CA certificates linked to the leaf by
// names (its issuer, their issuers...), each certificate once, farthest from the leaf first; at
// one distance in the order of their bytes.
func linkedCandidates(presented []*x509.Certificate) []int {
	var linked []int // presented indexes, nearest to the leaf first
	wanted := [][]byte{presented[0].RawIssuer}
	for len(wanted) > 0 { // each round links at least one more candidate, or is the last
		var next [][]byte
		round := len(linked)
		for i := 1; i < len(presented); i++ {
			c := presented[i]
			// A certificate that is not a CA cannot issue one; chain building would refuse it too.
			// A second copy of the same certificate adds nothing.
			if !c.IsCA || !containsBytes(wanted, c.RawSubject) ||
				slices.ContainsFunc(linked, func(j int) bool { return j == i || bytes.Equal(presented[j].Raw, c.Raw) }) {
				continue
			}
			linked = append(linked, i)
			if !containsBytes(next, c.RawIssuer) {
				next = append(next, c.RawIssuer)
			}
		}
		// The candidates of one round in the order of their bytes: the tries, and so which of
		// several re-issued copies is admitted, depend on the set presented, not on its order.
		slices.SortFunc(linked[round:], func(i, j int) int { return bytes.Compare(presented[i].Raw, presented[j].Raw) })
		wanted = next
	}
	slices.Reverse(linked)
	return linked
}

// admitting is the state of admit between its passes.
type admitting struct {
	t         *trust
	presented []*x509.Certificate
	now       time.Time
	a         admission
	errs      []error             // by presented index: why a candidate failed its last try
	admitted  []*x509.Certificate // the admitted candidates, in order
	tried     []int               // by presented index: len(admitted) when it was last tried
}

// pass tries the pending candidates once, in order, admitting those that verify, and returns
// those that failed or were not tried (no issuer of them admitted since their last try; on the
// first pass every candidate is tried).
func (ad *admitting) pass(pending []int, first bool) (failed []int) {
	for _, i := range pending {
		c := ad.presented[i]
		if slices.ContainsFunc(ad.admitted, func(p *x509.Certificate) bool { return reissued(p, c) }) {
			continue // adds no path to the one admitted; left unvouched
		}
		if !first && !slices.ContainsFunc(ad.admitted[ad.tried[i]:], func(p *x509.Certificate) bool { return mayIssue(p, c) }) {
			failed = append(failed, i) // no issuer of it admitted since it was tried
			continue
		}
		if !ad.try(i) {
			failed = append(failed, i)
		}
	}
	return failed
}

// try verifies the candidate i as a certificate of its own, up to a root through the pool so
// far, and admits it into the pool if it verifies and is not an anchor or a copy of its issuer;
// it says whether it verified.
func (ad *admitting) try(i int) bool {
	c, t, a := ad.presented[i], ad.t, &ad.a
	ad.tried[i] = len(ad.admitted)
	admitTries.Add(1)
	chains, err := c.Verify(x509.VerifyOptions{
		Roots:         t.roots,
		Intermediates: a.pool,
		CurrentTime:   ad.now,
		KeyUsages:     []x509.ExtKeyUsage{x509.ExtKeyUsageAny},
	})
	if err != nil {
		ad.errs[i] = err
		return false
	}
	ad.errs[i], a.vouched[i] = nil, true
	if slices.ContainsFunc(chains, func(ch []*x509.Certificate) bool { return len(ch) == 1 || sameCA(ch[0], ch[1]) }) {
		return true // an anchor, or a copy of its issuer
	}
	if a.pool == t.intermediates {
		a.pool = a.pool.Clone()
	}
	a.pool.AddCert(c)
	ad.admitted = append(ad.admitted, c)
	return true
}

// mayIssue says whether the CA certificate p may be the issuer of c by what they name: its
// subject is c's issuer, and its subject key identifier is c's authority key identifier when
// both have one (RFC 5280 4.2.1.1). A presented candidate is retried only for an admitted one
// that may be its issuer, so that decoys naming a CA they were not issued by cost one try.
func mayIssue(p, c *x509.Certificate) bool {
	return bytes.Equal(p.RawSubject, c.RawIssuer) &&
		(len(c.AuthorityKeyId) == 0 || len(p.SubjectKeyId) == 0 || bytes.Equal(c.AuthorityKeyId, p.SubjectKeyId))
}

// reissued says whether a and b are copies of one certificate issued again: the same to-be-signed
// contents (issuer, subject, key, extensions) but for the serial number and the validity period.
// Chain building would check each copy's signature with the same key for the same outcome, so
// admit takes only the first that verifies.
func reissued(a, b *x509.Certificate) bool {
	a1, a2, a3, okA := tbsWithoutSerialValidity(a.RawTBSCertificate)
	b1, b2, b3, okB := tbsWithoutSerialValidity(b.RawTBSCertificate)
	return okA && okB && bytes.Equal(a1, b1) && bytes.Equal(a2, b2) && bytes.Equal(a3, b3)
}

// tbsWithoutSerialValidity returns the pieces of a TBSCertificate's contents around its serial
// number and validity: the version, the signature algorithm and issuer, and what follows the
// validity (subject, key, extensions).
func tbsWithoutSerialValidity(tbs []byte) (version, algIssuer, rest []byte, ok bool) {
	in := cryptobyte.String(tbs)
	var body cryptobyte.String
	if !in.ReadASN1(&body, cbasn1.SEQUENCE) || !in.Empty() {
		return nil, nil, nil, false
	}
	all := []byte(body)
	if !body.SkipOptionalASN1(cbasn1.Tag(0).Constructed().ContextSpecific()) {
		return nil, nil, nil, false
	}
	version = all[:len(all)-len(body)]
	if !body.SkipASN1(cbasn1.INTEGER) {
		return nil, nil, nil, false
	}
	start := []byte(body)
	if !body.SkipASN1(cbasn1.SEQUENCE) || !body.SkipASN1(cbasn1.SEQUENCE) {
		return nil, nil, nil, false
	}
	algIssuer = start[:len(start)-len(body)]
	if !body.SkipASN1(cbasn1.SEQUENCE) {
		return nil, nil, nil, false
	}
	return version, algIssuer, body, true
}

// admitTries counts the tries of presented candidates by admit, each a verification that may
// check signatures: what tests measure the cost of a presented chain by.
var admitTries atomic.Int64

// sameCA says whether a and b are the same CA: the same subject and key.
func sameCA(a, b *x509.Certificate) bool {
	return bytes.Equal(a.RawSubject, b.RawSubject) && bytes.Equal(a.RawSubjectPublicKeyInfo, b.RawSubjectPublicKeyInfo)
}

func isUnknownAuthority(err error) bool {
	var unknown x509.UnknownAuthorityError
	return errors.As(err, &unknown)
}

// refusal is a presented CA certificate that admit left out, and why.
type refusal struct {
	cert *x509.Certificate
	err  error
}

func containsBytes(list [][]byte, b []byte) bool {
	for _, x := range list {
		if bytes.Equal(x, b) {
			return true
		}
	}
	return false
}

// checkPresented checks what does not depend on trust anchors, before any signature: the leaf's
// critical extensions, usage and validity. (The pipeline screened the number and contents of the
// presented certificates before.)
func (t *trust) checkPresented(presented []*x509.Certificate, now time.Time) error {
	leaf := presented[0]
	fail := func(kind error, detail string) error {
		e := newError(kind, detail, nil)
		e.Leaf = leaf
		return e
	}
	switch {
	case len(leaf.UnhandledCriticalExtensions) > 0:
		// RFC 5280 4.2: a certificate with a critical extension that is not understood must be
		// refused, whether it is pinned, forwarded by a proxy or verified up to a root.
		return fail(ErrUntrusted, fmt.Sprintf("the client certificate has an unhandled critical extension %s", clip(leaf.UnhandledCriticalExtensions[0].String())))
	case leaf.IsCA || leaf.KeyUsage&x509.KeyUsageCertSign != 0:
		return fail(ErrWrongUsage, "the client certificate is a CA certificate")
	case !hasClientAuth(leaf) && (!t.allowNoEKU || hasEKUExtension(leaf)):
		return fail(ErrWrongUsage, wrongUsage(leaf))
	case !hasClientAuth(leaf) && notForClients(leaf) != "":
		return fail(ErrWrongUsage, notForClients(leaf))
	case now.Before(leaf.NotBefore):
		return fail(ErrNotYetValid, fmt.Sprintf("valid from %s, %s from now: is a clock wrong?",
			leaf.NotBefore.UTC().Format(time.RFC3339), roughly(leaf.NotBefore.Sub(now))))
	case now.After(leaf.NotAfter):
		return fail(ErrExpired, fmt.Sprintf("expired at %s, %s ago: the client must renew it",
			leaf.NotAfter.UTC().Format(time.RFC3339), roughly(now.Sub(leaf.NotAfter))))
	}
	return nil
}

// wrongUsage is the detail of a refusal of leaf for its extended key usages: what it has, and
// what would fix it.
func wrongUsage(leaf *x509.Certificate) string {
	if !hasEKUExtension(leaf) {
		return "the client certificate has no extended key usage extension, and clientAuth must be listed: " +
			"have the CA issue it for client authentication (openssl: -extfile with \"extendedKeyUsage = clientAuth\"), " +
			"or accept such leaves, for any purpose they were issued for, with Config.DangerouslyAllowNoExtKeyUsage"
	}
	anyEKU := ""
	if slices.Contains(leaf.ExtKeyUsage, x509.ExtKeyUsageAny) {
		anyEKU = ": anyExtendedKeyUsage does not stand for it (nor does Config.DangerouslyAllowNoExtKeyUsage accept it)"
	}
	return "the client certificate lacks the clientAuth extended key usage" + usagesOf(leaf) + anyEKU +
		": have the CA issue it for client authentication"
}

// notForClients says why leaf, which has no extended key usage extension (and which
// Config.DangerouslyAllowNoExtKeyUsage accepts for that), is not for client authentication
// either, as OpenSSL's "sslclient" purpose (what nginx and other OpenSSL servers check) judges
// it: a key usage extension that allows neither digitalSignature nor keyAgreement, or a Netscape
// certificate type extension without SSL client; "" if neither.
func notForClients(leaf *x509.Certificate) string {
	const why = "the client certificate has no extended key usage, which Config.DangerouslyAllowNoExtKeyUsage accepts, but "
	const fix = ": OpenSSL (nginx) refuses it for client authentication too; have the CA issue it for client authentication " +
		"(openssl: -extfile with \"extendedKeyUsage = clientAuth\")"
	if extension(leaf, oidKeyUsage) != nil && leaf.KeyUsage&(x509.KeyUsageDigitalSignature|x509.KeyUsageKeyAgreement) == 0 {
		return why + "its key usage allows neither digitalSignature nor keyAgreement" + keyUsagesOf(leaf.KeyUsage) + fix
	}
	if ext := extension(leaf, oidNetscapeCertType); ext != nil {
		var bits asn1.BitString
		if rest, err := asn1.Unmarshal(ext.Value, &bits); err != nil || len(rest) > 0 {
			return why + "its Netscape certificate type extension (" + oidNetscapeCertType.String() + ") does not parse" + fix
		}
		if bits.At(0) == 0 { // bit 0: SSL client
			return why + "its Netscape certificate type (" + oidNetscapeCertType.String() + ") does not include SSL client" +
				netscapeTypesOf(bits) + fix
		}
	}
	return ""
}

// keyUsagesOf lists the key usages ku holds, for a refusal's detail.
func keyUsagesOf(ku x509.KeyUsage) string {
	names := []string{"digitalSignature", "contentCommitment", "keyEncipherment", "dataEncipherment", "keyAgreement",
		"keyCertSign", "cRLSign", "encipherOnly", "decipherOnly"}
	var have []string
	for i, n := range names {
		if ku&(1<<i) != 0 {
			have = append(have, n)
		}
	}
	if len(have) == 0 {
		return " (its key usage extension lists none)"
	}
	return " (it has " + strings.Join(have, ", ") + ")"
}

// netscapeTypesOf lists the Netscape certificate types bits holds, for a refusal's detail.
func netscapeTypesOf(bits asn1.BitString) string {
	names := []string{"sslClient", "sslServer", "smime", "objectSigning", "reserved", "sslCA", "smimeCA", "objectSigningCA"}
	var have []string
	for i, n := range names {
		if bits.At(i) != 0 {
			have = append(have, n)
		}
	}
	if len(have) == 0 {
		return " (it lists none)"
	}
	return " (it has " + strings.Join(have, ", ") + ")"
}

// Object identifiers of extensions the usage checks read.
var (
	oidExtKeyUsage      = asn1.ObjectIdentifier{2, 5, 29, 37}
	oidKeyUsage         = asn1.ObjectIdentifier{2, 5, 29, 15}
	oidNetscapeCertType = asn1.ObjectIdentifier{2, 16, 840, 1, 113730, 1, 1}
)

// extension returns the extension of c with the object identifier id, or nil. crypto/x509
// refuses to parse a certificate with two extensions of one identifier.
func extension(c *x509.Certificate, id asn1.ObjectIdentifier) *pkix.Extension {
	for i := range c.Extensions {
		if c.Extensions[i].Id.Equal(id) {
			return &c.Extensions[i]
		}
	}
	return nil
}

// hasEKUExtension says whether c has an extended key usage extension, whatever it lists (even
// nothing, which crypto/x509 parses as no usage, as it parses a certificate without one).
func hasEKUExtension(c *x509.Certificate) bool { return extension(c, oidExtKeyUsage) != nil }

func hasClientAuth(c *x509.Certificate) bool {
	for _, u := range c.ExtKeyUsage {
		if u == x509.ExtKeyUsageClientAuth {
			return true
		}
	}
	return false
}

// classifyVerifyError maps an x509 verification error to a sentinel.
func classifyVerifyError(err error, now time.Time) error {
	var inv x509.CertificateInvalidError
	if errors.As(err, &inv) {
		switch inv.Reason {
		case x509.Expired:
			if inv.Cert != nil && now.Before(inv.Cert.NotBefore) {
				return ErrNotYetValid
			}
			return ErrExpired
		case x509.IncompatibleUsage:
			return ErrWrongUsage
		}
	}
	return ErrUntrusted
}

// earliestNotAfter is when the first certificate of chain expires: a verified outcome is not
// reused past it.
func earliestNotAfter(chain []*x509.Certificate) time.Time {
	t := chain[0].NotAfter
	for _, c := range chain[1:] {
		if c.NotAfter.Before(t) {
			t = c.NotAfter
		}
	}
	return t
}

// negativeTTL bounds how long a refusal is remembered, so that a client cannot make the server
// verify the same bad chain on every request, yet a fixed clock problem heals quickly.
const negativeTTL = time.Minute

func negativeExpiry(leaf *x509.Certificate, err error, now time.Time) time.Time {
	exp := now.Add(negativeTTL)
	if errors.Is(err, ErrNotYetValid) && leaf.NotBefore.Before(exp) {
		exp = leaf.NotBefore
	}
	return exp
}

// The TLS configuration and the handshake's checks: handshake.go.

// explain says, for the operator, what a failed verification most likely means and what would fix
// it: a missing intermediate, a chain ending at a CA that is not a root, an expired CA.
func (t *trust) explain(presented []*x509.Certificate, err error, now time.Time) string {
	var inv x509.CertificateInvalidError
	if errors.As(err, &inv) && inv.Reason == x509.IncompatibleUsage {
		// The leaf's own usages were checked before: a CA's restrict those of what it issues.
		return "every path to a root has a CA certificate whose extended key usages do not include clientAuth: " +
			"it may only issue certificates for the usages it lists"
	}
	if errors.As(err, &inv) && inv.Reason == x509.Expired && inv.Cert != nil && inv.Cert != presented[0] {
		c := inv.Cert
		if now.Before(c.NotBefore) {
			return fmt.Sprintf("CA certificate %q of the chain is valid only from %s", clip(c.Subject.String()), c.NotBefore.UTC().Format(time.RFC3339))
		}
		return fmt.Sprintf("CA certificate %q of the chain expired at %s, %s ago", clip(c.Subject.String()),
			c.NotAfter.UTC().Format(time.RFC3339), roughly(now.Sub(c.NotAfter)))
	}
	if !isUnknownAuthority(err) {
		return ""
	}
	// The top of what the client sent: follow issuer names from the leaf through the presented
	// certificates, each at most once.
	top := presented[0]
	for range presented {
		next := slices.IndexFunc(presented[1:], func(c *x509.Certificate) bool {
			return c != top && bytes.Equal(c.RawSubject, top.RawIssuer)
		})
		if next < 0 || bytes.Equal(top.RawSubject, top.RawIssuer) {
			break
		}
		top = presented[1+next]
	}
	configured := t.isCAName(top.RawIssuer)
	switch {
	case top == presented[0] && !configured && bytes.Equal(top.RawSubject, top.RawIssuer):
		return fmt.Sprintf("the client sent a self-signed certificate, %q, which no configured CA issued: to trust this "+
			"certificate alone, pin its SHA-256 fingerprint in PinnedSHA256 (openssl x509 -noout -fingerprint -sha256 -in FILE)",
			clip(top.Subject.String()))
	case top == presented[0] && !configured:
		return fmt.Sprintf("the client sent its certificate alone, and no configured CA is named %q, its issuer: "+
			"if that is an intermediate, add it to IntermediateFiles or have the client send its chain; "+
			"if it is a root, it is not one this service trusts", clip(top.Issuer.String()))
	case configured:
		return fmt.Sprintf("a configured CA is named %q, but its key did not sign %q (a CA renewed under the same name? "+
			"then the client must also send the certificate of the new key that the CA issued under its own name)", clip(top.Issuer.String()), clip(top.Subject.String()))
	case bytes.Equal(top.RawSubject, top.RawIssuer):
		return fmt.Sprintf("the chain the client sent ends at %q, which is not a configured root", clip(top.Subject.String()))
	}
	return fmt.Sprintf("the chain the client sent ends at %q, issued by %q, which is not a configured root or intermediate", clip(top.Subject.String()), clip(top.Issuer.String()))
}

// isCAName says whether a configured root or intermediate has the subject name raw.
func (t *trust) isCAName(raw []byte) bool {
	for _, pool := range []*x509.CertPool{t.roots, t.intermediates} {
		if pool == nil {
			continue
		}
		//lint:ignore SA1019 the pools are built from the configuration, never the system pool
		if slices.ContainsFunc(pool.Subjects(), func(s []byte) bool { return bytes.Equal(s, raw) }) {
			return true
		}
	}
	return false
}

// maxNameInDetail bounds a name written into a refusal's detail: names come from the client, and
// details reach the logs of every refused request.
const maxNameInDetail = 256

// clip cuts s, a name or other text a client controls (a certificate's name, a Host, a header
// name), to maxNameInDetail bytes for a refusal's detail or a log record, and marks the cut with
// "...". Every such text is clipped before it enters a detail, quoted with %q.
func clip(s string) string {
	if len(s) <= maxNameInDetail {
		return s
	}
	return s[:runeCut(s, maxNameInDetail)] + "..."
}

// runeCut is where to cut s to at most n bytes (n < len(s)): n, or the start of the rune that
// byte n falls in, at most utf8.UTFMax-1 bytes back. The bytes before the cut are kept as they
// are, invalid UTF-8 too, for the quoting of the detail or the log handler to show: a name with
// an invalid byte does not read like one without it.
func runeCut(s string, n int) int {
	for i := n; i > 0 && i > n-utf8.UTFMax; i-- {
		if utf8.RuneStart(s[i]) {
			return i
		}
	}
	return n
}

// usagesOf lists the extended key usages of c, for a refusal's detail: at most eight.
func usagesOf(c *x509.Certificate) string {
	names := map[x509.ExtKeyUsage]string{x509.ExtKeyUsageServerAuth: "serverAuth", x509.ExtKeyUsageCodeSigning: "codeSigning",
		x509.ExtKeyUsageEmailProtection: "emailProtection", x509.ExtKeyUsageTimeStamping: "timeStamping",
		x509.ExtKeyUsageOCSPSigning: "OCSPSigning", x509.ExtKeyUsageAny: "any"}
	var have []string
	for _, u := range c.ExtKeyUsage {
		if n, ok := names[u]; ok {
			have = append(have, n)
		} else {
			have = append(have, fmt.Sprintf("#%d", u))
		}
	}
	for _, oid := range c.UnknownExtKeyUsage {
		have = append(have, clip(oid.String()))
	}
	if n := len(have); n > 8 {
		have = append(have[:8], fmt.Sprintf("and %d more", n-8))
	}
	if len(have) == 0 {
		return " (its extended key usage extension lists none)"
	}
	return " (it has " + strings.Join(have, ", ") + ")"
}

// roughly writes d for a person: in days when it is more than two, else in hours or minutes.
func roughly(d time.Duration) string {
	switch {
	case d >= 48*time.Hour:
		return fmt.Sprintf("%d days", int(d/(24*time.Hour)))
	case d >= 2*time.Hour:
		return fmt.Sprintf("%d hours", int(d/time.Hour))
	case d >= 2*time.Minute:
		return fmt.Sprintf("%d minutes", int(d/time.Minute))
	}
	return d.Round(time.Second).String()
}
