// Package ocspcheck checks OCSP responses: everything ocsp.ParseResponse leaves to its caller.
// Bytes, certificates and a time in; the response or a plain error out.
package ocspcheck

import (
	"bytes"
	"crypto"
	_ "crypto/sha1" // OCSP CertIDs are SHA-1 by default (an identifier, not a signature)
	_ "crypto/sha256"
	_ "crypto/sha512"
	"crypto/x509"
	encasn1 "encoding/asn1"
	"errors"
	"fmt"
	"math/big"
	"slices"
	"time"

	"golang.org/x/crypto/cryptobyte"
	"golang.org/x/crypto/cryptobyte/asn1"
	"golang.org/x/crypto/ocsp"
)

// NoNextUpdateTTL is how long a response without nextUpdate ("newer information is always
// available") is taken to be valid.
const NoNextUpdateTTL = 5 * time.Minute

// Verify parses der and checks everything ocsp.ParseResponse leaves to its caller: the CertID
// names this issuer (not just this serial), the signer is the issuer or a responder certificate
// issued by it for id-kp-OCSPSigning, not a CA and valid at now, the signature algorithm is not
// SHA-1 or MD5, and the answer is fresh at now, within skew.
func Verify(der []byte, c, issuer *x509.Certificate, now time.Time, skew time.Duration) (*ocsp.Response, error) {
	resp, err := ocsp.ParseResponseForCert(der, c, nil)
	if err != nil {
		return nil, err
	}
	if err := checkCertID(resp.TBSResponseData, c, issuer); err != nil {
		return nil, err
	}
	signer := issuer
	if rc := resp.Certificate; rc != nil && !bytes.Equal(rc.Raw, issuer.Raw) {
		if err := rc.CheckSignatureFrom(issuer); err != nil {
			return nil, fmt.Errorf("responder certificate %q is not issued by the certificate's issuer: %w", rc.Subject.String(), err)
		}
		if rc.IsCA {
			// A sub-CA carrying the EKU for another purpose must not answer for its siblings.
			return nil, fmt.Errorf("responder certificate %q is a CA certificate", rc.Subject.String())
		}
		if !slices.Contains(rc.ExtKeyUsage, x509.ExtKeyUsageOCSPSigning) {
			return nil, fmt.Errorf("responder certificate %q lacks the OCSPSigning extended key usage", rc.Subject.String())
		}
		if now.Add(skew).Before(rc.NotBefore) || now.Add(-skew).After(rc.NotAfter) {
			return nil, fmt.Errorf("responder certificate %q is outside its validity period", rc.Subject.String())
		}
		signer = rc
	}
	switch resp.SignatureAlgorithm {
	case x509.SHA1WithRSA, x509.DSAWithSHA1, x509.ECDSAWithSHA1, x509.MD5WithRSA, x509.MD2WithRSA:
		// As for CRLs: x509's CheckSignature still accepts SHA-1, whose collisions are practical.
		return nil, fmt.Errorf("response signed with the insecure algorithm %v", resp.SignatureAlgorithm)
	}
	if err := resp.CheckSignatureFrom(signer); err != nil {
		return nil, fmt.Errorf("bad response signature: %w", err)
	}
	if resp.ThisUpdate.IsZero() || resp.ThisUpdate.After(now.Add(skew)) {
		return nil, fmt.Errorf("response thisUpdate %s lies in the future", resp.ThisUpdate.UTC().Format(time.RFC3339))
	}
	next := resp.NextUpdate
	if next.IsZero() {
		next = resp.ThisUpdate.Add(NoNextUpdateTTL)
	} else if next.Before(resp.ThisUpdate) {
		return nil, errors.New("response nextUpdate precedes thisUpdate")
	}
	if !now.Add(-skew).Before(next) {
		return nil, fmt.Errorf("response expired at %s", next.UTC().Format(time.RFC3339))
	}
	if resp.Status == ocsp.Revoked && resp.RevokedAt.IsZero() {
		return nil, errors.New("revoked response without a revocation time")
	}
	return resp, nil
}

var (
	oidSHA1   = encasn1.ObjectIdentifier{1, 3, 14, 3, 2, 26}
	oidSHA256 = encasn1.ObjectIdentifier{2, 16, 840, 1, 101, 3, 4, 2, 1}
	oidSHA384 = encasn1.ObjectIdentifier{2, 16, 840, 1, 101, 3, 4, 2, 2}
	oidSHA512 = encasn1.ObjectIdentifier{2, 16, 840, 1, 101, 3, 4, 2, 3}
)

// checkCertID reads the SingleResponses of a ResponseData and requires exactly one for c's
// serial, whose issuer name and key hashes are those of issuer.
func checkCertID(tbs []byte, c, issuer *x509.Certificate) error {
	s := cryptobyte.String(tbs)
	var rd, responses cryptobyte.String
	var tag asn1.Tag
	var skip cryptobyte.String
	if !s.ReadASN1(&rd, asn1.SEQUENCE) ||
		!rd.SkipOptionalASN1(asn1.Tag(0).Constructed().ContextSpecific()) ||
		!rd.ReadAnyASN1(&skip, &tag) || // responderID
		!rd.SkipASN1(asn1.GeneralizedTime) ||
		!rd.ReadASN1(&responses, asn1.SEQUENCE) {
		return errors.New("malformed response data")
	}
	var issuerKey encasn1.BitString
	spki := cryptobyte.String(issuer.RawSubjectPublicKeyInfo)
	var spkiSeq cryptobyte.String
	if !spki.ReadASN1(&spkiSeq, asn1.SEQUENCE) || !spkiSeq.SkipASN1(asn1.SEQUENCE) ||
		!spkiSeq.ReadASN1BitString(&issuerKey) {
		return errors.New("malformed issuer public key")
	}
	matches := 0
	for !responses.Empty() {
		var single, certID, alg, nameHash, keyHash cryptobyte.String
		var oid encasn1.ObjectIdentifier
		serial := new(big.Int)
		if !responses.ReadASN1(&single, asn1.SEQUENCE) || !single.ReadASN1(&certID, asn1.SEQUENCE) ||
			!certID.ReadASN1(&alg, asn1.SEQUENCE) || !alg.ReadASN1ObjectIdentifier(&oid) ||
			!certID.ReadASN1(&nameHash, asn1.OCTET_STRING) || !certID.ReadASN1(&keyHash, asn1.OCTET_STRING) ||
			!certID.ReadASN1Integer(serial) {
			return errors.New("malformed single response")
		}
		if serial.Cmp(c.SerialNumber) != 0 {
			continue
		}
		matches++
		var h crypto.Hash
		switch {
		case oid.Equal(oidSHA1):
			h = crypto.SHA1
		case oid.Equal(oidSHA256):
			h = crypto.SHA256
		case oid.Equal(oidSHA384):
			h = crypto.SHA384
		case oid.Equal(oidSHA512):
			h = crypto.SHA512
		default:
			return fmt.Errorf("unsupported CertID hash %v", oid)
		}
		hn := h.New()
		hn.Write(issuer.RawSubject)
		if !bytes.Equal(hn.Sum(nil), nameHash) {
			return errors.New("the response is about a certificate of another issuer (name hash)")
		}
		hk := h.New()
		hk.Write(issuerKey.RightAlign())
		if !bytes.Equal(hk.Sum(nil), keyHash) {
			return errors.New("the response is about a certificate of another issuer (key hash)")
		}
	}
	if matches != 1 {
		return fmt.Errorf("%d answers for the certificate's serial, want exactly one", matches)
	}
	return nil
}
