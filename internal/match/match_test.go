package match

import (
	"crypto/x509/pkix"
	"encoding/asn1"
	"fmt"
	"math/big"
	"net"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestFormatSerial(t *testing.T) {
	tests := []struct {
		name string
		n    *big.Int
		want string
	}{
		{"zero", big.NewInt(0), "0x0"},
		{"small", big.NewInt(0x1000), "0x1000"},
		{"lowercase", big.NewInt(0xabcdef), "0xabcdef"},
		{"negative", big.NewInt(-0x1f), "-0x1f"},
		{"nil", nil, "<nil>"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got := FormatSerial(tc.n)
			assert.Equal(t, tc.want, got)
			if tc.n == nil || tc.n.Sign() < 0 {
				_, err := ParseSerial(got)
				assert.Error(t, err, "not a serial ParseSerial reads")
				return
			}
			back, err := ParseSerial(got)
			require.NoError(t, err)
			assert.Equal(t, 0, back.Cmp(tc.n), "parses back to the same number")
		})
	}
}

func TestParseSerial(t *testing.T) {
	tests := []struct {
		in   string
		want int64 // -1: refused
	}{
		{"0x1000", 0x1000}, {"0X1000", 0x1000}, {"10:00", 0x1000}, {"00:10:00", 0x1000},
		{"4096", -1}, {"0x", -1}, {"0x-5", -1}, {"1:0", -1}, {"0x10:00", -1}, {"0xg1", -1}, {"", -1},
	}
	for _, tc := range tests {
		t.Run(tc.in, func(t *testing.T) {
			n, err := ParseSerial(tc.in)
			if tc.want < 0 {
				assert.Error(t, err)
				return
			}
			require.NoError(t, err)
			assert.Equal(t, big.NewInt(tc.want), n)
		})
	}
}

func TestSerialSet(t *testing.T) {
	var s SerialSet
	norm, err := s.Add("00:ff:01")
	require.NoError(t, err)
	assert.Equal(t, "0xff01", norm)
	assert.True(t, s.Has(big.NewInt(0xff01)))
	assert.False(t, s.Has(big.NewInt(-0xff01)))
	assert.False(t, s.Has(nil))
	assert.False(t, s.Has(new(big.Int).Lsh(big.NewInt(1), 8*MaxSerialBytes)))
}

func TestLookupAttrAndParseOID(t *testing.T) {
	tests := []struct {
		key, name string
		single    bool
		err       bool
	}{
		{"CN", "cn", true, false},
		{"commonName", "cn", true, false},
		{"2.5.4.3", "cn", true, false},
		{"emailAddress", "email", false, false},
		{"2.5.4.12", "2.5.4.12", false, false},
		{"title", "", false, true},
		{"2.5.04.3", "", false, true},
		{"3.1", "", false, true},
		{"1.40", "", false, true},
		{"2", "", false, true},
	}
	for _, tc := range tests {
		t.Run(tc.key, func(t *testing.T) {
			a, err := LookupAttr(tc.key)
			if tc.err {
				assert.Error(t, err)
				return
			}
			require.NoError(t, err)
			assert.Equal(t, tc.name, a.Name)
			assert.Equal(t, tc.single, a.Single)
		})
	}
}

func TestAppendFolded(t *testing.T) {
	tests := []struct{ in, want string }{
		{"Contractors", "CONTRACTORS"},
		{"  contr\u00adactors\u200b \t", "CONTRACTORS"},
		{"\uff23ontractors", "CONTRACTORS"},
		{"a  \u00a0 b", "A B"},
		{"\u212a", "K"}, // the Kelvin sign, k and K fold to the smallest: K (letters fold to upper case)
		{"k", "K"},
	}
	for _, tc := range tests {
		t.Run(tc.in, func(t *testing.T) {
			got, ok := AppendFolded(nil, tc.in, 64)
			require.True(t, ok)
			assert.Equal(t, tc.want, string(got))
		})
	}
	_, ok := AppendFolded(nil, "abcdef", 3)
	assert.False(t, ok, "over the limit")
}

func TestMatchName(t *testing.T) {
	cn, _ := LookupAttr("cn")
	ou, _ := LookupAttr("ou")
	rules := []NameRule{NewNameRule(cn, []string{"alice"}), NewNameRule(ou, []string{"payments"})}
	atv := func(a Attr, v any) pkix.AttributeTypeAndValue {
		return pkix.AttributeTypeAndValue{Type: a.OID, Value: v}
	}
	tests := []struct {
		name  string
		names []pkix.AttributeTypeAndValue
		want  Verdict
	}{
		{"match", []pkix.AttributeTypeAndValue{atv(cn, "alice"), atv(ou, "x"), atv(ou, "payments")}, Yes},
		{"missing ou", []pkix.AttributeTypeAndValue{atv(cn, "alice")}, No},
		{"other cn", []pkix.AttributeTypeAndValue{atv(cn, "bob"), atv(ou, "payments")}, No},
		{"folded cn", []pkix.AttributeTypeAndValue{atv(cn, "Alice"), atv(ou, "payments")}, Undecided},
		{"two cns", []pkix.AttributeTypeAndValue{atv(cn, "alice"), atv(cn, "bob"), atv(ou, "payments")}, Undecided},
		{"not a string", []pkix.AttributeTypeAndValue{atv(cn, 5), atv(ou, "payments")}, No},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			assert.Equal(t, tc.want, MatchName(tc.names, rules))
		})
	}
}

func TestDNSSet(t *testing.T) {
	var s DNSSet
	for _, p := range []string{"API.example.com", "*.svc.example.com"} {
		_, err := s.Add(p)
		require.NoError(t, err)
	}
	tests := []struct {
		name  string
		names []string
		want  Verdict
	}{
		{"exact, any case", []string{"api.EXAMPLE.com"}, Yes},
		{"wildcard", []string{"a.svc.example.com"}, Yes},
		{"wildcard covers one label", []string{"a.b.svc.example.com"}, No},
		{"wildcard does not cover the apex", []string{"svc.example.com"}, No},
		{"trailing dot", []string{"api.example.com."}, Undecided},
		{"wildcard SAN", []string{"*.svc.example.com"}, Undecided},
		{"wildcard SAN covering an exact name", []string{"*.EXAMPLE.com"}, Undecided},
		{"partial wildcard SAN covering an exact name", []string{"a*.example.com"}, Undecided},
		{"partial wildcard SAN under a wildcard", []string{"x*y.svc.example.com"}, Undecided},
		{"partial wildcard SAN, trailing dot", []string{"a*.example.com."}, Undecided},
		{"unrelated wildcard SAN", []string{"*.other.example.com"}, No},
		{"other", []string{"x.example.com"}, No},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			assert.Equal(t, tc.want, s.Match(tc.names))
		})
	}
	for _, bad := range []string{"*.com", "a..b", "a*.example.com", "\u212a.example.com", "a b"} {
		_, _, err := ParseDNSPattern(bad)
		assert.Error(t, err, "%q", bad)
	}
}

func TestIPSet(t *testing.T) {
	var s IPSet
	for _, v := range []string{"10.0.0.0/8", "::ffff:192.168.0.1", "2001:db8::/32"} {
		_, err := s.Add(v)
		require.NoError(t, err)
	}
	assert.Equal(t, Yes, s.Match([]net.IP{net.ParseIP("10.1.2.3").To4()}))
	assert.Equal(t, Yes, s.Match([]net.IP{net.ParseIP("192.168.0.1").To4()}), "a mapped address given is its IPv4 form")
	assert.Equal(t, Undecided, s.Match([]net.IP{net.ParseIP("10.1.2.3").To16()}), "a 16-byte mapped SAN")
	assert.Equal(t, Undecided, s.Match([]net.IP{net.ParseIP("64:ff9b::10.1.2.3")}), "NAT64")
	assert.Equal(t, Undecided, s.Match([]net.IP{net.ParseIP("2002:a01:203::1")}), "6to4")
	assert.Equal(t, Undecided, s.Match([]net.IP{net.ParseIP("::10.1.2.3")}), "IPv4-compatible")
	assert.Equal(t, No, s.Match([]net.IP{net.ParseIP("64:ff9b::11.0.0.1")}), "NAT64 of an unlisted address")
	assert.Equal(t, Yes, s.Match([]net.IP{net.ParseIP("2001:db8::10.1.2.3")}), "an IPv6 prefix holds it")
	assert.Equal(t, No, s.Match([]net.IP{net.ParseIP("11.0.0.1").To4()}))
	for _, bad := range []string{"10.0.0.1/8", "::ffff:10.0.0.0/95", "fe80::1%eth0", "10.0.0"} {
		_, err := s.Add(bad)
		assert.Error(t, err, "%q", bad)
	}
}

func TestDigests(t *testing.T) {
	b, err := ParseDigest("AB:cd ef", 3)
	require.NoError(t, err)
	assert.Equal(t, []byte{0xab, 0xcd, 0xef}, b)
	_, err = ParseDigest("abcd", 3)
	assert.EqualError(t, err, "not 6 hexadecimal digits")
	_, err = ParseHex("")
	assert.Error(t, err)
	pin, err := ParseSHA256Pin("47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=")
	require.NoError(t, err)
	hexPin, err := ParseSHA256Pin("e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855")
	require.NoError(t, err)
	assert.Equal(t, hexPin, pin)
}

func TestExtension(t *testing.T) {
	oid := asn1.ObjectIdentifier{1, 2, 3}
	present := &Extension{OID: oid}
	str := &Extension{OID: oid}
	str.AddString("p")
	der := &Extension{OID: oid}
	der.AddDER([]byte{0x04, 0x01, 0x70})
	ext := func(v ...byte) []pkix.Extension { return []pkix.Extension{{Id: oid, Value: v}} }
	assert.Equal(t, No, present.Match(nil))
	assert.Equal(t, Yes, present.Match(ext(0x05, 0x00)))
	assert.Equal(t, Yes, str.Match(ext(0x0c, 0x01, 'p')))
	assert.Equal(t, No, str.Match(ext(0x0c, 0x01, 'q')))
	assert.Equal(t, Undecided, str.Match(ext(0x04, 0x01, 'p')), "an OCTET STRING is not a readable string")
	assert.Equal(t, Yes, der.Match(ext(0x04, 0x01, 0x70)))
	assert.Equal(t, No, der.Match(ext(0x0c, 0x01, 0x70)))
}

// TestDNSSetAllocations: judging wildcard SANs, plain or with a trailing dot, allocates nothing,
// however many names are listed.
func TestDNSSetAllocations(t *testing.T) {
	var s DNSSet
	for i := range 10000 {
		_, err := s.Add(fmt.Sprintf("h%d.svc%d.example", i, i))
		require.NoError(t, err)
	}
	sans := []string{"*.a.test", "a*.b.test", "*.c.test.", "x.d.test."}
	require.Equal(t, No, s.Match(sans))
	assert.Zero(t, testing.AllocsPerRun(100, func() { _ = s.Match(sans) }))
}

// BenchmarkDNSSetWildcardSANs: the cost of judging wildcard SANs grows with their number only,
// not with the number of names listed.
func BenchmarkDNSSetWildcardSANs(b *testing.B) {
	for _, sans := range []int{10, 1000} {
		for _, names := range []int{10, 10000} {
			b.Run(fmt.Sprintf("sans=%d/names=%d", sans, names), func(b *testing.B) {
				var s DNSSet
				for i := range names {
					_, err := s.Add(fmt.Sprintf("h%d.svc%d.example", i, i))
					require.NoError(b, err)
				}
				list := make([]string, sans)
				for i := range list {
					list[i] = fmt.Sprintf("*.%d.t", i)
				}
				b.ReportAllocs()
				for b.Loop() {
					_ = s.Match(list)
				}
			})
		}
	}
}
