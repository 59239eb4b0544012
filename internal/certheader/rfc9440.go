package certheader

import (
	"crypto/x509"
	"encoding/base64"
	"fmt"
	"strings"
)

// sfByteSequence decodes one RFC 8941 byte sequence (":base64:") of one DER certificate, with
// nothing around it. Parameters are not defined by RFC 9440 and are refused.
func sfByteSequence(v string) ([]byte, error) {
	if len(v) < 2 || v[0] != ':' {
		return nil, fmt.Errorf("not a structured-field byte sequence")
	}
	end := strings.IndexByte(v[1:], ':')
	if end < 0 {
		return nil, fmt.Errorf("byte sequence without closing colon")
	}
	if rest := v[end+2:]; rest != "" {
		return nil, fmt.Errorf("unexpected data after byte sequence")
	}
	return decodeOneDER(v[1:end+1], true) // refuses any byte outside the base64 alphabet
}

// sfLeaf decodes Client-Cert.
func sfLeaf(v string) ([][]byte, error) {
	der, err := sfByteSequence(v)
	if err != nil {
		return nil, err
	}
	return [][]byte{der}, nil
}

// sfList decodes Client-Cert-Chain, a list of byte sequences.
func sfList(v string) ([][]byte, error) { return decodeList(v, sfByteSequence) }

func sfEncode(c *x509.Certificate) string {
	return ":" + base64.StdEncoding.EncodeToString(c.Raw) + ":"
}

// EncodeRFC9440 returns the values of Client-Cert and Client-Cert-Chain for chain, leaf first
// (at least one certificate); the second is "" when there is no intermediate.
func EncodeRFC9440(chain []*x509.Certificate) []string {
	members := make([]string, len(chain)-1)
	for i, c := range chain[1:] {
		members[i] = sfEncode(c)
	}
	return []string{sfEncode(chain[0]), strings.Join(members, ", ")}
}
