package crl

import (
	encasn1 "encoding/asn1"
	"errors"
	"fmt"
	"hash/maphash"
	"math/big"

	"golang.org/x/crypto/cryptobyte"
	"golang.org/x/crypto/cryptobyte/asn1"
)

// MaxSerialLen bounds a serial number's DER content in a CRL entry. RFC 5280 allows 20 octets;
// CAs that exceed it exist, so some slack is left.
const MaxSerialLen = 64

// SerialSet is a set of serial numbers (DER INTEGER contents) with memory proportional to their
// bytes: an arena of length-prefixed serials and an open-addressing table of 8-byte slots, each
// holding the top 32 bits of the serial's hash (which also choose its home slot) and its arena
// offset plus one (0: empty slot). The table has 1.5 slots per serial and is probed linearly.
//
// Inserting a million serials at random places of a 12 MB table would spend most of the load in
// cache misses, so the slot values are first radix-sorted by their top bits (that is, by home
// slot) and then inserted in order, which writes the table almost sequentially.
type SerialSet struct {
	seed  maphash.Seed
	slots []uint64
	arena []byte
	n     int
}

// build indexes the entries of a revokedCertificates sequence. Entries with a critical extension
// (such as certificateIssuer, which belongs to indirect CRLs) make the CRL unusable.
func (s *SerialSet) build(revoked cryptobyte.String) error {
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
		if len(serial) == 0 || len(serial) > MaxSerialLen ||
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

func (s *SerialSet) slot(h uint64) int { return int((h >> 32) * uint64(len(s.slots)) >> 32) }

// insert places a slot value (hash tag and offset), unless the serial is already there.
func (s *SerialSet) insert(v uint64) {
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

func (s *SerialSet) at(off uint32) string {
	l := uint32(s.arena[off])
	return string(s.arena[off+1 : off+1+l])
}

// Contains reports whether serial (the DER INTEGER content of a serial number) is in the set. It
// does not allocate.
func (s *SerialSet) Contains(serial []byte) bool {
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

// Revoked reports whether the set holds serial (a certificate's serial number). It does not
// allocate for positive serials.
func (s *SerialSet) Revoked(serial *big.Int) bool {
	var buf [MaxSerialLen + 1]byte
	b, ok := SerialContent(&buf, serial)
	return ok && s.Contains(b)
}

// Len is the number of distinct serials in the set.
func (s *SerialSet) Len() int { return s.n }

// SizeBytes is the memory held by the index.
func (s *SerialSet) SizeBytes() int { return 8*cap(s.slots) + cap(s.arena) }

// SerialContent returns the DER INTEGER content of n (minimal two's complement), written into
// buf when n is not negative, and false when it is longer than MaxSerialLen octets (no CRL entry
// can list it).
func SerialContent(buf *[MaxSerialLen + 1]byte, n *big.Int) ([]byte, bool) {
	if n.Sign() < 0 {
		if b := IntegerContent(n); b != nil && len(b) <= MaxSerialLen {
			return b, true
		}
		return nil, false
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
	if l > MaxSerialLen {
		return nil, false
	}
	n.FillBytes(buf[:l])
	return buf[:l], true
}

// IntegerContent returns the DER INTEGER content of n, whatever its length; nil if it cannot be
// encoded.
func IntegerContent(n *big.Int) []byte {
	der, err := encasn1.Marshal(n)
	if err != nil {
		return nil
	}
	s := cryptobyte.String(der)
	var content cryptobyte.String
	if !s.ReadASN1(&content, asn1.INTEGER) {
		return nil
	}
	return content
}
