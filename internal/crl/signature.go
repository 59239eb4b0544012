package crl

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

	"golang.org/x/crypto/cryptobyte"
	"golang.org/x/crypto/cryptobyte/asn1"
)

// SignedDigest is a signature and the digest of what it signs, checked later with a public key.
type SignedDigest struct {
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
func newSignedDigest(algo x509.SignatureAlgorithm, h crypto.Hash, msg, signature []byte) SignedDigest {
	sd := SignedDigest{algo: algo, hash: h, signature: bytes.Clone(signature)}
	if h == 0 {
		sd.message = bytes.Clone(msg)
		return sd
	}
	hh := h.New()
	hh.Write(msg)
	sd.digest = hh.Sum(nil)
	return sd
}

// VerifyWith checks the signature with pub.
func (sd *SignedDigest) VerifyWith(pub any) error {
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
