package mtls

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/rsa"
	_ "crypto/sha256" // registers SHA-256 for crypto.Hash.New
	_ "crypto/sha512" // registers SHA-384 and SHA-512
	"crypto/x509"
	encasn1 "encoding/asn1"
	"errors"
	"fmt"
	"hash/maphash"
	"math/big"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/crypto/cryptobyte"
	"golang.org/x/crypto/cryptobyte/asn1"
)

// This file holds the CRL scanner and its index. A CRL is read once with cryptobyte, without
// building a pkix.RevokedCertificate per entry: the serial numbers are copied into one arena and
// indexed by an open-addressing hash table, which is all that is kept of the entries. The
// signature cannot always be checked at load time (the issuer is known only from a verified
// chain), so the digest of the signed part is kept and the signature is checked against the issuer
// of the chain that led to the download when there is one (see crlSource.acceptable), or else of
// the first chain that consults the CRL; a CRL whose signature does not verify with that issuer's
// key says nothing about that issuer's certificates.

// maxSerialLen bounds a serial number's DER content. RFC 5280 allows 20 octets; CAs that exceed it
// exist, so some slack is left.
const maxSerialLen = 64

// crl is a scanned, immutable certificate revocation list.
type crl struct {
	issuer     []byte // DER of the issuer Name
	thisUpdate time.Time
	nextUpdate time.Time
	number     *big.Int // cRLNumber, nil when absent
	aki        []byte   // authority key identifier, nil when absent
	scope      crlScope
	sig        signedDigest
	serials    serialSet

	verified atomic.Pointer[x509.Certificate] // the issuer whose key verified the signature
	failMu   sync.Mutex
	failed   [][]byte // SPKIs that did not verify it (a few, to avoid repeating the work)
}

// crlScope is what an issuingDistributionPoint extension restricts the CRL to.
type crlScope struct {
	onlyUser, onlyCA bool
	points           []string // full-name URIs; empty: the CRL covers every certificate of the issuer
}

// covers reports whether the CRL speaks for c.
func (s *crlScope) covers(c *x509.Certificate) bool {
	if s.onlyUser && c.IsCA || s.onlyCA && !c.IsCA {
		return false
	}
	if len(s.points) == 0 {
		return true
	}
	for _, p := range s.points {
		for _, dp := range c.CRLDistributionPoints {
			if p == dp {
				return true
			}
		}
	}
	return false
}

// signedDigest is a signature and the digest of what it signs, checked later with a public key.
type signedDigest struct {
	algo      x509.SignatureAlgorithm
	hash      crypto.Hash // 0 for Ed25519
	digest    []byte
	message   []byte // the signed bytes themselves, kept only for Ed25519 (which signs the message)
	signature []byte
}

var (
	oidSHA256WithRSA   = encasn1.ObjectIdentifier{1, 2, 840, 113549, 1, 1, 11}
	oidSHA384WithRSA   = encasn1.ObjectIdentifier{1, 2, 840, 113549, 1, 1, 12}
	oidSHA512WithRSA   = encasn1.ObjectIdentifier{1, 2, 840, 113549, 1, 1, 13}
	oidRSAPSS          = encasn1.ObjectIdentifier{1, 2, 840, 113549, 1, 1, 10}
	oidECDSAWithSHA256 = encasn1.ObjectIdentifier{1, 2, 840, 10045, 4, 3, 2}
	oidECDSAWithSHA384 = encasn1.ObjectIdentifier{1, 2, 840, 10045, 4, 3, 3}
	oidECDSAWithSHA512 = encasn1.ObjectIdentifier{1, 2, 840, 10045, 4, 3, 4}
	oidEd25519         = encasn1.ObjectIdentifier{1, 3, 101, 112}
	oidSHA256          = encasn1.ObjectIdentifier{2, 16, 840, 1, 101, 3, 4, 2, 1}
	oidSHA384          = encasn1.ObjectIdentifier{2, 16, 840, 1, 101, 3, 4, 2, 2}
	oidSHA512          = encasn1.ObjectIdentifier{2, 16, 840, 1, 101, 3, 4, 2, 3}

	oidExtCRLNumber      = encasn1.ObjectIdentifier{2, 5, 29, 20}
	oidExtAKI            = encasn1.ObjectIdentifier{2, 5, 29, 35}
	oidExtDeltaCRL       = encasn1.ObjectIdentifier{2, 5, 29, 27}
	oidExtIssuingDP      = encasn1.ObjectIdentifier{2, 5, 29, 28}
	oidExtFreshestCRL    = encasn1.ObjectIdentifier{2, 5, 29, 46}
	oidExtAuthorityInfo  = encasn1.ObjectIdentifier{1, 3, 6, 1, 5, 5, 7, 1, 1}
	oidExtReasonCode     = encasn1.ObjectIdentifier{2, 5, 29, 21}
	oidExtInvalidityDate = encasn1.ObjectIdentifier{2, 5, 29, 24}
)

// parseSignatureAlgorithm maps a DER AlgorithmIdentifier to the algorithm and its hash. SHA-1 and
// MD5 signatures are refused.
func parseSignatureAlgorithm(der cryptobyte.String) (x509.SignatureAlgorithm, crypto.Hash, error) {
	var alg cryptobyte.String
	var oid encasn1.ObjectIdentifier
	if !der.ReadASN1(&alg, asn1.SEQUENCE) || !alg.ReadASN1ObjectIdentifier(&oid) {
		return 0, 0, errors.New("malformed signature algorithm")
	}
	switch {
	case oid.Equal(oidSHA256WithRSA):
		return x509.SHA256WithRSA, crypto.SHA256, nil
	case oid.Equal(oidSHA384WithRSA):
		return x509.SHA384WithRSA, crypto.SHA384, nil
	case oid.Equal(oidSHA512WithRSA):
		return x509.SHA512WithRSA, crypto.SHA512, nil
	case oid.Equal(oidECDSAWithSHA256):
		return x509.ECDSAWithSHA256, crypto.SHA256, nil
	case oid.Equal(oidECDSAWithSHA384):
		return x509.ECDSAWithSHA384, crypto.SHA384, nil
	case oid.Equal(oidECDSAWithSHA512):
		return x509.ECDSAWithSHA512, crypto.SHA512, nil
	case oid.Equal(oidEd25519):
		return x509.PureEd25519, 0, nil
	case oid.Equal(oidRSAPSS):
		// RSASSA-PSS-params: the hash is in [0]; x509 signs with salt length = hash length.
		var params, hashAlg, hashSeq cryptobyte.String
		var hoid encasn1.ObjectIdentifier
		if !alg.ReadASN1(&params, asn1.SEQUENCE) ||
			!params.ReadASN1(&hashAlg, asn1.Tag(0).Constructed().ContextSpecific()) ||
			!hashAlg.ReadASN1(&hashSeq, asn1.SEQUENCE) || !hashSeq.ReadASN1ObjectIdentifier(&hoid) {
			return 0, 0, errors.New("unsupported RSA-PSS parameters")
		}
		switch {
		case hoid.Equal(oidSHA256):
			return x509.SHA256WithRSAPSS, crypto.SHA256, nil
		case hoid.Equal(oidSHA384):
			return x509.SHA384WithRSAPSS, crypto.SHA384, nil
		case hoid.Equal(oidSHA512):
			return x509.SHA512WithRSAPSS, crypto.SHA512, nil
		}
		return 0, 0, errors.New("unsupported RSA-PSS hash")
	}
	return 0, 0, fmt.Errorf("unsupported or insecure signature algorithm %v", oid)
}

// newSignedDigest hashes msg for a later check of signature by algo.
func newSignedDigest(algo x509.SignatureAlgorithm, h crypto.Hash, msg, signature []byte) signedDigest {
	sd := signedDigest{algo: algo, hash: h, signature: bytes.Clone(signature)}
	if h == 0 {
		sd.message = bytes.Clone(msg)
		return sd
	}
	hh := h.New()
	hh.Write(msg)
	sd.digest = hh.Sum(nil)
	return sd
}

// verify checks the signature with pub.
func (sd *signedDigest) verify(pub any) error {
	switch k := pub.(type) {
	case *rsa.PublicKey:
		switch sd.algo {
		case x509.SHA256WithRSA, x509.SHA384WithRSA, x509.SHA512WithRSA:
			return rsa.VerifyPKCS1v15(k, sd.hash, sd.digest, sd.signature)
		case x509.SHA256WithRSAPSS, x509.SHA384WithRSAPSS, x509.SHA512WithRSAPSS:
			return rsa.VerifyPSS(k, sd.hash, sd.digest, sd.signature, &rsa.PSSOptions{SaltLength: rsa.PSSSaltLengthEqualsHash})
		}
	case *ecdsa.PublicKey:
		switch sd.algo {
		case x509.ECDSAWithSHA256, x509.ECDSAWithSHA384, x509.ECDSAWithSHA512:
			if !ecdsa.VerifyASN1(k, sd.digest, sd.signature) {
				return errors.New("ECDSA verification failure")
			}
			return nil
		}
	case ed25519.PublicKey:
		if sd.algo == x509.PureEd25519 {
			if !ed25519.Verify(k, sd.message, sd.signature) {
				return errors.New("Ed25519 verification failure")
			}
			return nil
		}
	}
	return fmt.Errorf("signature algorithm %v does not match the issuer's %T key", sd.algo, pub)
}

// parseCRL scans a DER CRL. It checks the structure, refuses delta CRLs, indirect CRLs, CRLs
// limited to some reasons and unknown critical extensions, and indexes the revoked serials. It
// does not check the signature (see crl.verifyWith).
func parseCRL(der []byte) (*crl, error) {
	input := cryptobyte.String(der)
	var certList, tbsElem, outerAlg cryptobyte.String
	var sigBits encasn1.BitString
	if !input.ReadASN1(&certList, asn1.SEQUENCE) || !input.Empty() ||
		!certList.ReadASN1Element(&tbsElem, asn1.SEQUENCE) ||
		!certList.ReadASN1Element(&outerAlg, asn1.SEQUENCE) ||
		!certList.ReadASN1BitString(&sigBits) || !certList.Empty() {
		return nil, errors.New("mtls: malformed CRL")
	}
	algo, h, err := parseSignatureAlgorithm(outerAlg)
	if err != nil {
		return nil, fmt.Errorf("mtls: CRL: %w", err)
	}
	c := &crl{}
	tbs := tbsElem
	var body, innerAlg, issuer cryptobyte.String
	if !tbs.ReadASN1(&body, asn1.SEQUENCE) {
		return nil, errors.New("mtls: malformed CRL")
	}
	if body.PeekASN1Tag(asn1.INTEGER) {
		var v int
		if !body.ReadASN1Integer(&v) || v != 1 {
			return nil, errors.New("mtls: CRL: unsupported version")
		}
	}
	if !body.ReadASN1Element(&innerAlg, asn1.SEQUENCE) || !bytes.Equal(innerAlg, outerAlg) {
		return nil, errors.New("mtls: CRL: inner and outer signature algorithms differ")
	}
	if !body.ReadASN1Element(&issuer, asn1.SEQUENCE) {
		return nil, errors.New("mtls: CRL: malformed issuer")
	}
	c.issuer = bytes.Clone(issuer)
	if c.thisUpdate, err = readTime(&body); err != nil {
		return nil, fmt.Errorf("mtls: CRL: thisUpdate: %w", err)
	}
	if body.PeekASN1Tag(asn1.UTCTime) || body.PeekASN1Tag(asn1.GeneralizedTime) {
		if c.nextUpdate, err = readTime(&body); err != nil {
			return nil, fmt.Errorf("mtls: CRL: nextUpdate: %w", err)
		}
	} else {
		return nil, errors.New("mtls: CRL has no nextUpdate, so its freshness cannot be judged")
	}
	var revoked cryptobyte.String
	if body.PeekASN1Tag(asn1.SEQUENCE) && !body.ReadASN1(&revoked, asn1.SEQUENCE) {
		return nil, errors.New("mtls: CRL: malformed revoked certificates")
	}
	if body.PeekASN1Tag(asn1.Tag(0).Constructed().ContextSpecific()) {
		var wrap, exts cryptobyte.String
		if !body.ReadASN1(&wrap, asn1.Tag(0).Constructed().ContextSpecific()) ||
			!wrap.ReadASN1(&exts, asn1.SEQUENCE) || !wrap.Empty() {
			return nil, errors.New("mtls: CRL: malformed extensions")
		}
		if err := c.parseExtensions(exts); err != nil {
			return nil, fmt.Errorf("mtls: CRL: %w", err)
		}
	}
	if !body.Empty() {
		return nil, errors.New("mtls: CRL: trailing data")
	}
	if err := c.serials.build(revoked); err != nil {
		return nil, fmt.Errorf("mtls: CRL: %w", err)
	}
	if sigBits.BitLength%8 != 0 {
		return nil, errors.New("mtls: CRL: malformed signature")
	}
	c.sig = newSignedDigest(algo, h, tbsElem, sigBits.Bytes)
	return c, nil
}

func readTime(s *cryptobyte.String) (time.Time, error) {
	var t time.Time
	switch {
	case s.PeekASN1Tag(asn1.UTCTime):
		if s.ReadASN1UTCTime(&t) {
			return t, nil
		}
	case s.PeekASN1Tag(asn1.GeneralizedTime):
		if s.ReadASN1GeneralizedTime(&t) {
			return t, nil
		}
	}
	return t, errors.New("malformed time")
}

// parseExtensions reads the crlExtensions.
func (c *crl) parseExtensions(exts cryptobyte.String) error {
	for !exts.Empty() {
		var ext, value cryptobyte.String
		var oid encasn1.ObjectIdentifier
		critical := false
		if !exts.ReadASN1(&ext, asn1.SEQUENCE) || !ext.ReadASN1ObjectIdentifier(&oid) ||
			!readCritical(&ext, &critical) ||
			!ext.ReadASN1(&value, asn1.OCTET_STRING) || !ext.Empty() {
			return errors.New("malformed extension")
		}
		switch {
		case oid.Equal(oidExtCRLNumber):
			n := new(big.Int)
			if !value.ReadASN1Integer(n) {
				return errors.New("malformed cRLNumber")
			}
			c.number = n
		case oid.Equal(oidExtAKI):
			var aki, kid cryptobyte.String
			var has bool
			if !value.ReadASN1(&aki, asn1.SEQUENCE) ||
				!aki.ReadOptionalASN1(&kid, &has, asn1.Tag(0).ContextSpecific()) {
				return errors.New("malformed authority key identifier")
			}
			if has {
				c.aki = bytes.Clone(kid)
			}
		case oid.Equal(oidExtDeltaCRL):
			return errors.New("delta CRLs are not supported")
		case oid.Equal(oidExtIssuingDP):
			if err := c.scope.parse(value); err != nil {
				return err
			}
		case oid.Equal(oidExtFreshestCRL), oid.Equal(oidExtAuthorityInfo):
		default:
			if critical {
				return fmt.Errorf("unsupported critical extension %v", oid)
			}
		}
	}
	return nil
}

// parse reads an issuingDistributionPoint. Scopes that cannot be honoured safely (indirect CRLs,
// partial reasons, attribute certificates, relative names) make the CRL unusable.
func (s *crlScope) parse(value cryptobyte.String) error {
	var idp cryptobyte.String
	if !value.ReadASN1(&idp, asn1.SEQUENCE) || !value.Empty() {
		return errors.New("malformed issuing distribution point")
	}
	if idp.PeekASN1Tag(asn1.Tag(0).Constructed().ContextSpecific()) {
		var dpn cryptobyte.String
		if !idp.ReadASN1(&dpn, asn1.Tag(0).Constructed().ContextSpecific()) {
			return errors.New("malformed distribution point name")
		}
		var names cryptobyte.String
		if !dpn.ReadASN1(&names, asn1.Tag(0).Constructed().ContextSpecific()) || !dpn.Empty() {
			return errors.New("issuing distribution point: only full names are supported")
		}
		for !names.Empty() {
			var name cryptobyte.String
			var tag asn1.Tag
			if !names.ReadAnyASN1(&name, &tag) {
				return errors.New("malformed distribution point name")
			}
			if tag == asn1.Tag(6).ContextSpecific() {
				s.points = append(s.points, string(name))
			}
		}
		if len(s.points) == 0 {
			return errors.New("issuing distribution point: no URI")
		}
	}
	readFlag := func(n uint8) (bool, error) {
		tag := asn1.Tag(n).ContextSpecific()
		if !idp.PeekASN1Tag(tag) {
			return false, nil
		}
		var v cryptobyte.String
		if !idp.ReadASN1(&v, tag) || len(v) != 1 || (v[0] != 0 && v[0] != 0xff) {
			return false, errors.New("malformed issuing distribution point flag")
		}
		return v[0] == 0xff, nil
	}
	var err error
	if s.onlyUser, err = readFlag(1); err != nil {
		return err
	}
	if s.onlyCA, err = readFlag(2); err != nil {
		return err
	}
	if idp.PeekASN1Tag(asn1.Tag(3).ContextSpecific()) {
		return errors.New("CRLs limited to some revocation reasons are not supported")
	}
	if indirect, err := readFlag(4); err != nil || indirect {
		return errors.Join(err, errors.New("indirect CRLs are not supported"))
	}
	if attr, err := readFlag(5); err != nil || attr {
		return errors.Join(err, errors.New("attribute certificate CRLs are not supported"))
	}
	if !idp.Empty() {
		return errors.New("malformed issuing distribution point")
	}
	return nil
}

// verifyWith checks that issuer signed the CRL: same name, a key allowed to sign CRLs, a matching
// key identifier and a valid signature. The outcome is remembered.
func (c *crl) verifyWith(issuer *x509.Certificate) error {
	if v := c.verified.Load(); v != nil {
		if v == issuer || bytes.Equal(v.RawSubjectPublicKeyInfo, issuer.RawSubjectPublicKeyInfo) &&
			bytes.Equal(v.RawSubject, issuer.RawSubject) {
			return nil
		}
		// One CRL has one signer: another key cannot have signed it too.
		return errors.New("mtls: CRL was signed by another CA with the same name")
	}
	if !bytes.Equal(c.issuer, issuer.RawSubject) {
		return errors.New("mtls: CRL issuer name differs from the certificate's issuer")
	}
	c.failMu.Lock()
	for _, spki := range c.failed {
		if bytes.Equal(spki, issuer.RawSubjectPublicKeyInfo) {
			c.failMu.Unlock()
			return errors.New("mtls: CRL signature does not verify with the issuer's key")
		}
	}
	c.failMu.Unlock()
	err := c.checkSigner(issuer)
	if err != nil {
		c.failMu.Lock()
		if len(c.failed) < 8 {
			c.failed = append(c.failed, issuer.RawSubjectPublicKeyInfo)
		}
		c.failMu.Unlock()
		return err
	}
	c.verified.Store(issuer)
	return nil
}

func (c *crl) checkSigner(issuer *x509.Certificate) error {
	if issuer.KeyUsage != 0 && issuer.KeyUsage&x509.KeyUsageCRLSign == 0 {
		return errors.New("mtls: the issuer's key usage does not allow signing CRLs")
	}
	if c.aki != nil && issuer.SubjectKeyId != nil && !bytes.Equal(c.aki, issuer.SubjectKeyId) {
		return errors.New("mtls: CRL authority key identifier does not match the issuer")
	}
	if err := c.sig.verify(issuer.PublicKey); err != nil {
		return fmt.Errorf("mtls: CRL signature does not verify with the issuer's key: %w", err)
	}
	return nil
}

// revoked reports whether the CRL lists serial (a certificate's serial number).
func (c *crl) revoked(serial *big.Int) bool {
	var buf [maxSerialLen + 1]byte
	b, ok := serialContent(&buf, serial)
	return ok && c.serials.contains(b)
}

// serialContent writes the DER INTEGER content of n (minimal two's complement) into buf.
func serialContent(buf *[maxSerialLen + 1]byte, n *big.Int) ([]byte, bool) {
	if n.Sign() < 0 {
		der, err := encasn1.Marshal(n)
		if err != nil {
			return nil, false
		}
		s := cryptobyte.String(der)
		var content cryptobyte.String
		if !s.ReadASN1(&content, asn1.INTEGER) {
			return nil, false
		}
		return content, true
	}
	bl := n.BitLen()
	if bl == 0 {
		buf[0] = 0
		return buf[:1], true
	}
	l := (bl + 7) / 8
	if bl%8 == 0 {
		l++ // the top bit is set: a leading zero keeps the integer positive
	}
	if l > maxSerialLen {
		return nil, false
	}
	n.FillBytes(buf[:l])
	return buf[:l], true
}

// serialSet is a set of serial numbers (DER INTEGER contents) with memory proportional to their
// bytes: an arena of length-prefixed serials and an open-addressing table of 8-byte slots, each
// holding the top 32 bits of the serial's hash (which also choose its home slot) and its arena
// offset plus one (0: empty slot). The table has 1.5 slots per serial and is probed linearly.
//
// Inserting a million serials at random places of a 12 MB table would spend most of the load in
// cache misses, so the slot values are first radix-sorted by their top bits (that is, by home
// slot) and then inserted in order, which writes the table almost sequentially.
type serialSet struct {
	seed  maphash.Seed
	slots []uint64
	arena []byte
	n     int
}

// build indexes the entries of a revokedCertificates sequence. Entries with a critical extension
// (such as certificateIssuer, which belongs to indirect CRLs) make the CRL unusable.
func (s *serialSet) build(revoked cryptobyte.String) error {
	// First pass: count entries and serial bytes, so that memory is allocated once and exactly.
	n, total := 0, 0
	for r := []byte(revoked); len(r) > 0; {
		var entry, serial []byte
		var ok bool
		if entry, r, ok = nextTLV(r, 0x30); !ok {
			return errors.New("malformed revoked certificate entry")
		}
		if serial, _, ok = nextTLV(entry, 0x02); !ok {
			return errors.New("malformed revoked certificate entry")
		}
		n++
		total += 1 + len(serial)
	}
	s.seed = maphash.MakeSeed()
	if n == 0 {
		return nil
	}
	if total >= 1<<32-1 {
		return errors.New("too many revoked certificates")
	}
	s.arena = make([]byte, total)
	s.slots = make([]uint64, n+n/2+1)
	items := make([]uint64, n)
	pos := 0
	for i, r := 0, []byte(revoked); len(r) > 0; i++ {
		entry, rest, _ := nextTLV(r, 0x30)
		r = rest
		serial, entry, _ := nextTLV(entry, 0x02)
		if len(serial) == 0 || len(serial) > maxSerialLen ||
			len(serial) > 1 && (serial[0] == 0 && serial[1]&0x80 == 0 || serial[0] == 0xff && serial[1]&0x80 != 0) {
			return errors.New("malformed or oversized serial number in an entry")
		}
		// revocationDate: UTCTime, or GeneralizedTime for dates from 2050 (RFC 5280, 5.1.2.6).
		var ok bool
		if len(entry) == 0 || entry[0] != 0x17 && entry[0] != 0x18 {
			return errors.New("malformed revocation date in an entry")
		}
		if _, entry, ok = nextTLV(entry, entry[0]); !ok {
			return errors.New("malformed revocation date in an entry")
		}
		if len(entry) > 0 {
			if err := checkEntryExtensions(entry); err != nil {
				return err
			}
		}
		h := maphash.Bytes(s.seed, serial)
		items[i] = h&^0xffffffff | uint64(pos+1)
		s.arena[pos] = byte(len(serial))
		copy(s.arena[pos+1:], serial)
		pos += 1 + len(serial)
	}
	// The table, still empty, serves as the sort's scratch space.
	items = radixSortTop16(items, s.slots[:n])
	clear(s.slots)
	for _, v := range items {
		s.insert(v)
	}
	return nil
}

// nextTLV splits the first DER element with the given tag off b, returning its content and the
// rest. Short lengths (the case of CRL entries) are read inline; long ones go through cryptobyte.
func nextTLV(b []byte, tag byte) (content, rest []byte, ok bool) {
	if len(b) >= 2 && b[0] == tag && b[1] < 0x80 {
		end := 2 + int(b[1])
		if end > len(b) {
			return nil, nil, false
		}
		return b[2:end], b[end:], true
	}
	s := cryptobyte.String(b)
	var out cryptobyte.String
	if !s.ReadASN1(&out, asn1.Tag(tag)) {
		return nil, nil, false
	}
	return out, s, true
}

// radixSortTop16 orders a by its top 16 bits (two passes of 8 bits, least significant first),
// using tmp as scratch, and returns the sorted slice.
func radixSortTop16(a, tmp []uint64) []uint64 {
	for shift := 48; shift < 64; shift += 8 {
		var count [256]int
		for _, v := range a {
			count[byte(v>>shift)]++
		}
		pos := 0
		for i, c := range count {
			count[i] = pos
			pos += c
		}
		for _, v := range a {
			b := byte(v >> shift)
			tmp[count[b]] = v
			count[b]++
		}
		a, tmp = tmp, a
	}
	return a
}

// readCritical reads the optional critical flag of an extension.
func readCritical(ext *cryptobyte.String, critical *bool) bool {
	if !ext.PeekASN1Tag(asn1.BOOLEAN) {
		return true
	}
	return ext.ReadASN1Boolean(critical)
}

func checkEntryExtensions(entry cryptobyte.String) error {
	var exts cryptobyte.String
	if !entry.ReadASN1(&exts, asn1.SEQUENCE) || !entry.Empty() {
		return errors.New("malformed entry extensions")
	}
	for !exts.Empty() {
		var ext cryptobyte.String
		var oid encasn1.ObjectIdentifier
		critical := false
		if !exts.ReadASN1(&ext, asn1.SEQUENCE) || !ext.ReadASN1ObjectIdentifier(&oid) ||
			!readCritical(&ext, &critical) {
			return errors.New("malformed entry extension")
		}
		if critical && !oid.Equal(oidExtReasonCode) && !oid.Equal(oidExtInvalidityDate) {
			return fmt.Errorf("unsupported critical entry extension %v", oid)
		}
	}
	return nil
}

func (s *serialSet) slot(h uint64) int { return int((h >> 32) * uint64(len(s.slots)) >> 32) }

// insert places a slot value (hash tag and offset), unless the serial is already there.
func (s *serialSet) insert(v uint64) {
	for i := s.slot(v); ; {
		old := s.slots[i]
		if old == 0 {
			s.slots[i] = v
			s.n++
			return
		}
		if old&^0xffffffff == v&^0xffffffff && s.at(uint32(old)-1) == s.at(uint32(v)-1) {
			return // listed twice
		}
		if i++; i == len(s.slots) {
			i = 0
		}
	}
}

func (s *serialSet) at(off uint32) string {
	l := uint32(s.arena[off])
	return string(s.arena[off+1 : off+1+l])
}

// contains reports whether serial is in the set. It does not allocate.
func (s *serialSet) contains(serial []byte) bool {
	if s.n == 0 {
		return false
	}
	h := maphash.Bytes(s.seed, serial)
	tag := h &^ 0xffffffff
	for i := s.slot(h); ; {
		v := s.slots[i]
		if v == 0 {
			return false
		}
		if v&^0xffffffff == tag {
			off := uint32(v) - 1
			l := uint32(s.arena[off])
			if string(s.arena[off+1:off+1+l]) == string(serial) {
				return true
			}
		}
		if i++; i == len(s.slots) {
			i = 0
		}
	}
}

// sizeBytes is the memory held by the index.
func (s *serialSet) sizeBytes() int { return 8*cap(s.slots) + cap(s.arena) }
