// Package crl scans DER certificate revocation lists. A CRL is read once with cryptobyte, without
// building a pkix.RevokedCertificate per entry: the serial numbers are copied into one arena and
// indexed by an open-addressing hash table, which is all that is kept of the entries. The
// signature cannot always be checked at load time (the issuer may be known only later, from a
// verified chain), so the digest of the signed part is kept and checked with [CRL.CheckSigner].
// Bytes in, values or plain errors out.
package crl

import (
	"bytes"
	"crypto/x509"
	encasn1 "encoding/asn1"
	"errors"
	"fmt"
	"math/big"
	"time"

	"golang.org/x/crypto/cryptobyte"
	"golang.org/x/crypto/cryptobyte/asn1"
)

// CRL is a scanned, immutable certificate revocation list.
type CRL struct {
	Issuer     []byte // DER of the issuer Name
	ThisUpdate time.Time
	NextUpdate time.Time
	Number     *big.Int // cRLNumber: always present, non-critical and non-negative
	AKI        []byte   // authority key identifier, nil when absent
	Scope      Scope
	Serials    SerialSet
	Signed     SignedDigest
}

// Scope is what an issuingDistributionPoint extension restricts the CRL to.
type Scope struct {
	OnlyUser, OnlyCA bool
	Points           []string // full-name URIs; empty: the CRL covers every certificate of the issuer
}

// Covers reports whether a CRL of this scope speaks for c.
func (s *Scope) Covers(c *x509.Certificate) bool {
	if s.OnlyUser && c.IsCA || s.OnlyCA && !c.IsCA {
		return false
	}
	if len(s.Points) == 0 {
		return true
	}
	for _, p := range s.Points {
		for _, dp := range c.CRLDistributionPoints {
			if p == dp {
				return true
			}
		}
	}
	return false
}

var (
	oidExtCRLNumber      = encasn1.ObjectIdentifier{2, 5, 29, 20}
	oidExtAKI            = encasn1.ObjectIdentifier{2, 5, 29, 35}
	oidExtDeltaCRL       = encasn1.ObjectIdentifier{2, 5, 29, 27}
	oidExtIssuingDP      = encasn1.ObjectIdentifier{2, 5, 29, 28}
	oidExtFreshestCRL    = encasn1.ObjectIdentifier{2, 5, 29, 46}
	oidExtAuthorityInfo  = encasn1.ObjectIdentifier{1, 3, 6, 1, 5, 5, 7, 1, 1}
	oidExtReasonCode     = encasn1.ObjectIdentifier{2, 5, 29, 21}
	oidExtInvalidityDate = encasn1.ObjectIdentifier{2, 5, 29, 24}
)

// Parse scans a DER CRL. It checks the structure, refuses delta CRLs, indirect CRLs, CRLs
// limited to some reasons, unknown critical extensions and CRLs without a non-critical cRLNumber
// (RFC 5280 5.2.3), and indexes the revoked serials. It
// does not check the signature (see [CRL.CheckSigner]).
func Parse(der []byte) (*CRL, error) {
	input := cryptobyte.String(der)
	var certList, tbsElem, outerAlg cryptobyte.String
	var sigBits encasn1.BitString
	if !input.ReadASN1(&certList, asn1.SEQUENCE) || !input.Empty() ||
		!certList.ReadASN1Element(&tbsElem, asn1.SEQUENCE) ||
		!certList.ReadASN1Element(&outerAlg, asn1.SEQUENCE) ||
		!certList.ReadASN1BitString(&sigBits) || !certList.Empty() {
		return nil, errors.New("malformed CRL")
	}
	algo, h, err := parseSignatureAlgorithm(outerAlg)
	if err != nil {
		return nil, fmt.Errorf("CRL: %w", err)
	}
	c := &CRL{}
	tbs := tbsElem
	var body, innerAlg, issuer cryptobyte.String
	if !tbs.ReadASN1(&body, asn1.SEQUENCE) {
		return nil, errors.New("malformed CRL")
	}
	if body.PeekASN1Tag(asn1.INTEGER) {
		var v int
		if !body.ReadASN1Integer(&v) || v != 1 {
			return nil, errors.New("CRL: unsupported version")
		}
	}
	if !body.ReadASN1Element(&innerAlg, asn1.SEQUENCE) || !bytes.Equal(innerAlg, outerAlg) {
		return nil, errors.New("CRL: inner and outer signature algorithms differ")
	}
	if !body.ReadASN1Element(&issuer, asn1.SEQUENCE) {
		return nil, errors.New("CRL: malformed issuer")
	}
	c.Issuer = bytes.Clone(issuer)
	if c.ThisUpdate, err = readTime(&body); err != nil {
		return nil, fmt.Errorf("CRL: thisUpdate: %w", err)
	}
	if body.PeekASN1Tag(asn1.UTCTime) || body.PeekASN1Tag(asn1.GeneralizedTime) {
		if c.NextUpdate, err = readTime(&body); err != nil {
			return nil, fmt.Errorf("CRL: nextUpdate: %w", err)
		}
	} else {
		return nil, errors.New("CRL has no nextUpdate, so its freshness cannot be judged")
	}
	var revoked cryptobyte.String
	if body.PeekASN1Tag(asn1.SEQUENCE) && !body.ReadASN1(&revoked, asn1.SEQUENCE) {
		return nil, errors.New("CRL: malformed revoked certificates")
	}
	if body.PeekASN1Tag(asn1.Tag(0).Constructed().ContextSpecific()) {
		var wrap, exts cryptobyte.String
		if !body.ReadASN1(&wrap, asn1.Tag(0).Constructed().ContextSpecific()) ||
			!wrap.ReadASN1(&exts, asn1.SEQUENCE) || !wrap.Empty() {
			return nil, errors.New("CRL: malformed extensions")
		}
		if err := c.parseExtensions(exts); err != nil {
			return nil, fmt.Errorf("CRL: %w", err)
		}
	}
	if !body.Empty() {
		return nil, errors.New("CRL: trailing data")
	}
	if c.Number == nil {
		// RFC 5280 5.2.3: conforming issuers include it, and replays are told by it.
		return nil, errors.New("the CRL has no cRLNumber (RFC 5280 5.2.3): with openssl ca, set crlnumber in the CA section")
	}
	if err := c.Serials.build(revoked); err != nil {
		return nil, fmt.Errorf("CRL: %w", err)
	}
	if sigBits.BitLength%8 != 0 {
		return nil, errors.New("CRL: malformed signature")
	}
	c.Signed = newSignedDigest(algo, h, tbsElem, sigBits.Bytes)
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
func (c *CRL) parseExtensions(exts cryptobyte.String) error {
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
			// RFC 5280 5.2.3: non-critical, an INTEGER (0..MAX).
			n := new(big.Int)
			if !value.ReadASN1Integer(n) || !value.Empty() || n.Sign() < 0 {
				return errors.New("malformed cRLNumber")
			}
			if critical {
				return errors.New("the cRLNumber extension is marked critical, which RFC 5280 forbids")
			}
			if c.Number != nil {
				return errors.New("more than one cRLNumber extension")
			}
			c.Number = n
		case oid.Equal(oidExtAKI):
			var aki, kid cryptobyte.String
			var has bool
			if !value.ReadASN1(&aki, asn1.SEQUENCE) ||
				!aki.ReadOptionalASN1(&kid, &has, asn1.Tag(0).ContextSpecific()) {
				return errors.New("malformed authority key identifier")
			}
			if has {
				c.AKI = bytes.Clone(kid)
			}
		case oid.Equal(oidExtDeltaCRL):
			return errors.New("delta CRLs are not supported")
		case oid.Equal(oidExtIssuingDP):
			if err := c.Scope.parse(value); err != nil {
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
func (s *Scope) parse(value cryptobyte.String) error {
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
				s.Points = append(s.Points, string(name))
			}
		}
		if len(s.Points) == 0 {
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
	if s.OnlyUser, err = readFlag(1); err != nil {
		return err
	}
	if s.OnlyCA, err = readFlag(2); err != nil {
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

// readCritical reads the optional critical flag of an extension.
func readCritical(ext *cryptobyte.String, critical *bool) bool {
	if !ext.PeekASN1Tag(asn1.BOOLEAN) {
		return true
	}
	return ext.ReadASN1Boolean(critical)
}

// CheckSigner checks that issuer may have signed the CRL and did: a key allowed to sign CRLs, a
// matching key identifier and a valid signature. The caller compares the names (the CRL's
// Issuer and the issuer's RawSubject).
func (c *CRL) CheckSigner(issuer *x509.Certificate) error {
	if issuer.KeyUsage != 0 && issuer.KeyUsage&x509.KeyUsageCRLSign == 0 {
		return errors.New("the issuer's key usage does not allow signing CRLs")
	}
	if c.AKI != nil && issuer.SubjectKeyId != nil && !bytes.Equal(c.AKI, issuer.SubjectKeyId) {
		return errors.New("CRL authority key identifier does not match the issuer")
	}
	if err := c.Signed.VerifyWith(issuer.PublicKey); err != nil {
		return fmt.Errorf("CRL signature does not verify with the issuer's key: %w", err)
	}
	return nil
}

// SameAs reports whether c and o are the same CRL: the same issuer and signature.
func (c *CRL) SameAs(o *CRL) bool {
	return bytes.Equal(c.Signed.signature, o.Signed.signature) && bytes.Equal(c.Issuer, o.Issuer)
}
