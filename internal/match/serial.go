package match

import (
	"errors"
	"math/big"
	"strings"
)

// MaxSerialBytes bounds the serial numbers that can be written: RFC 5280 allows 20 octets, some
// CAs write more, and a deny list must still be able to name them.
const MaxSerialBytes = 128

// ParseSerial reads a serial number in hexadecimal: "0x" (or "0X") followed by digits, or bytes
// of two digits separated by colons ("10:00"). Digits alone are refused as ambiguous (decimal or
// hexadecimal); there is no sign or other separator; at most MaxSerialBytes bytes, after an
// optional leading zero byte.
func ParseSerial(s string) (*big.Int, error) {
	digits, ok := strings.CutPrefix(s, "0x")
	if !ok {
		digits, ok = strings.CutPrefix(s, "0X")
	}
	switch {
	case ok:
		if digits == "" || strings.Contains(digits, ":") {
			return nil, errors.New("write 0x followed by hexadecimal digits, or bytes separated by colons")
		}
	case strings.Contains(s, ":"):
		parts := strings.Split(s, ":")
		for _, part := range parts {
			if len(part) != 2 {
				return nil, errors.New("write each byte as two hexadecimal digits between colons, as openssl prints it")
			}
		}
		digits = strings.Join(parts, "")
	default:
		return nil, errors.New("ambiguous: write hexadecimal with 0x (openssl x509 -serial prints serial=1000: write 0x1000) or bytes with colons (10:00)")
	}
	errLong := errors.New("longer than 128 bytes")
	if len(digits) > 2*(MaxSerialBytes+1) { // a leading 00 byte, as openssl -text writes it, is allowed
		return nil, errLong
	}
	for i := 0; i < len(digits); i++ {
		if c := digits[i]; !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f' || c >= 'A' && c <= 'F') {
			return nil, errNotHex
		}
	}
	n, _ := new(big.Int).SetString(digits, 16)
	if n.BitLen() > 8*MaxSerialBytes {
		return nil, errLong
	}
	return n, nil
}

// FormatSerial writes n as ParseSerial reads it: "0x" followed by lowercase hexadecimal digits.
// A negative number, which ParseSerial does not read (certificates should not have one), is
// written with a leading '-', as in -0x1f; nil is written "<nil>".
func FormatSerial(n *big.Int) string {
	switch {
	case n == nil:
		return "<nil>"
	case n.Sign() < 0:
		return "-0x" + new(big.Int).Neg(n).Text(16)
	}
	return "0x" + n.Text(16)
}

// SerialSet is a set of serial numbers. The zero value is empty.
type SerialSet struct{ set map[string]struct{} } // big-endian bytes without leading zeros

// Add parses a serial number (see ParseSerial) and adds it; norm is its FormatSerial form.
func (s *SerialSet) Add(serial string) (norm string, err error) {
	n, err := ParseSerial(serial)
	if err != nil {
		return "", err
	}
	if s.set == nil {
		s.set = map[string]struct{}{}
	}
	s.set[string(n.Bytes())] = struct{}{}
	return FormatSerial(n), nil
}

// Has reports whether sn is in the set, without allocating.
func (s *SerialSet) Has(sn *big.Int) bool {
	if sn == nil || sn.Sign() < 0 || sn.BitLen() > 8*MaxSerialBytes {
		return false
	}
	var buf [MaxSerialBytes]byte
	_, ok := s.set[string(sn.FillBytes(buf[:(sn.BitLen()+7)/8]))]
	return ok
}
