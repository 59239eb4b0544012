package match

import (
	"crypto/x509"
	"encoding/asn1"
	"errors"
	"strings"
)

var ekuNames = []struct {
	name string
	oid  asn1.ObjectIdentifier
	eku  x509.ExtKeyUsage
}{
	{"any", asn1.ObjectIdentifier{2, 5, 29, 37, 0}, x509.ExtKeyUsageAny},
	{"serverAuth", asn1.ObjectIdentifier{1, 3, 6, 1, 5, 5, 7, 3, 1}, x509.ExtKeyUsageServerAuth},
	{"clientAuth", asn1.ObjectIdentifier{1, 3, 6, 1, 5, 5, 7, 3, 2}, x509.ExtKeyUsageClientAuth},
	{"codeSigning", asn1.ObjectIdentifier{1, 3, 6, 1, 5, 5, 7, 3, 3}, x509.ExtKeyUsageCodeSigning},
	{"emailProtection", asn1.ObjectIdentifier{1, 3, 6, 1, 5, 5, 7, 3, 4}, x509.ExtKeyUsageEmailProtection},
	{"ipsecEndSystem", asn1.ObjectIdentifier{1, 3, 6, 1, 5, 5, 7, 3, 5}, x509.ExtKeyUsageIPSECEndSystem},
	{"ipsecTunnel", asn1.ObjectIdentifier{1, 3, 6, 1, 5, 5, 7, 3, 6}, x509.ExtKeyUsageIPSECTunnel},
	{"ipsecUser", asn1.ObjectIdentifier{1, 3, 6, 1, 5, 5, 7, 3, 7}, x509.ExtKeyUsageIPSECUser},
	{"timeStamping", asn1.ObjectIdentifier{1, 3, 6, 1, 5, 5, 7, 3, 8}, x509.ExtKeyUsageTimeStamping},
	{"OCSPSigning", asn1.ObjectIdentifier{1, 3, 6, 1, 5, 5, 7, 3, 9}, x509.ExtKeyUsageOCSPSigning},
	{"microsoftServerGatedCrypto", asn1.ObjectIdentifier{1, 3, 6, 1, 4, 1, 311, 10, 3, 3}, x509.ExtKeyUsageMicrosoftServerGatedCrypto},
	{"netscapeServerGatedCrypto", asn1.ObjectIdentifier{2, 16, 840, 1, 113730, 4, 1}, x509.ExtKeyUsageNetscapeServerGatedCrypto},
	{"microsoftCommercialCodeSigning", asn1.ObjectIdentifier{1, 3, 6, 1, 4, 1, 311, 2, 1, 22}, x509.ExtKeyUsageMicrosoftCommercialCodeSigning},
	{"microsoftKernelCodeSigning", asn1.ObjectIdentifier{1, 3, 6, 1, 4, 1, 311, 61, 1, 1}, x509.ExtKeyUsageMicrosoftKernelCodeSigning},
}

// EKUSet is a set of extended key usages. The zero value is empty.
type EKUSet struct {
	known []x509.ExtKeyUsage
	other []asn1.ObjectIdentifier
}

// Add parses a usage, a name (clientAuth, serverAuth, any, ...; case-insensitive) or a dotted
// object identifier, and adds it; norm is the usage's name, or its dotted identifier for a usage
// without one.
func (s *EKUSet) Add(usage string) (norm string, err error) {
	for _, e := range ekuNames {
		if strings.EqualFold(usage, e.name) {
			s.known = append(s.known, e.eku)
			return e.name, nil
		}
	}
	oid, err := ParseOID(usage)
	if err != nil {
		return "", errors.New("unknown extended key usage (a name such as clientAuth, or a dotted OID)")
	}
	for _, e := range ekuNames {
		if e.oid.Equal(oid) {
			s.known = append(s.known, e.eku)
			return e.name, nil
		}
	}
	s.other = append(s.other, oid)
	return oid.String(), nil
}

// Match is Yes when the usages of a certificate (as crypto/x509 parses them) hold a listed one,
// Undecided when they hold anyExtendedKeyUsage only (allowed for every usage: not a listed one,
// but not a mismatch either), and No otherwise.
func (s *EKUSet) Match(usages []x509.ExtKeyUsage, unknown []asn1.ObjectIdentifier) Verdict {
	anyEKU := false
	for _, have := range usages {
		anyEKU = anyEKU || have == x509.ExtKeyUsageAny
		for _, want := range s.known {
			if have == want {
				return Yes
			}
		}
	}
	for _, have := range unknown {
		for _, want := range s.other {
			if have.Equal(want) {
				return Yes
			}
		}
	}
	if anyEKU {
		return Undecided
	}
	return No
}
