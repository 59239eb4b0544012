package certheader

import (
	"bytes"
	"encoding/base64"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestXFCCRefusesEarly: a value is read no further than the element that refuses it; the rest,
// a syntax error here, is never reached, whatever its length.
func TestXFCCRefusesEarly(t *testing.T) {
	const tail = `Cert="never closed`
	tests := []struct {
		name, head string // the value read before the refusal
		repeat     string // then repeated, past the refusal
		wantErr    string
	}{
		{"too many elements", strings.Repeat(`Hash=00,`, maxXFCCElements), `Hash=00,`, "more than 16 elements"},
		{"unquoted By in the first element", `By=spiffe://gw;URI=spiffe://a,`, `Hash=00,`, "a by value in element 1"},
		{"unknown keys in the first element", strings.Repeat(`a=b;`, 8) + `a=b,`, `a=b;`, "a a value in element 1"},
		{"unquoted DNS in the third element", `Hash=00,Subject="x",DNS=a;Hash=00,`, `Hash=00,`, "a dns value in element 3"},
		{"quoted Hash in the second element", `Hash=00,Hash="00";Cert="x",`, `Subject="` + strings.Repeat(`\"`, 50) + `",`, "a hash value in element 2"},
	}
	for _, tt := range tests {
		for _, n := range []int{1, 100, 1000} {
			v := tt.head + strings.Repeat(tt.repeat, n) + tail
			s := &xfccScanner{v: v}
			got, err := decodeXFCC(s)
			require.ErrorContains(t, err, tt.wantErr, tt.name)
			assert.Nil(t, got)
			assert.Equal(t, len(tt.head), s.i, "%s: bytes read of %d", tt.name, len(v))
			_, err = XFCC([]string{v})
			require.ErrorContains(t, err, tt.wantErr, tt.name)
		}
	}
}

// TestDecodeRefusesTooMany: every list format refuses a value of more than MaxCertificates
// certificates, with allocations that do not grow with the number of certificates beyond it.
func TestDecodeRefusesTooMany(t *testing.T) {
	const der = "MAA=" // base64 of 30 00, an empty SEQUENCE: splits as one DER certificate
	ders := func(n int) string { return base64.StdEncoding.EncodeToString(bytes.Repeat([]byte{0x30, 0}, n)) }
	tiny := pemBegin + der + pemEnd
	tests := []struct {
		name   string
		decode decoder
		values func(n int) []string // a value of n certificates
	}{
		{"rfc9440 chain", RFC9440, func(n int) []string {
			return []string{":" + der + ":", strings.Repeat(":"+der+":, ", n-2) + ":" + der + ":"}
		}},
		{"traefik", Traefik, func(n int) []string { return []string{strings.Repeat(der+",", n-1) + der} }},
		{"pem", PEM, func(n int) []string { return []string{strings.Repeat(tiny, n)} }},
		{"pem chain header", PEM, func(n int) []string { return []string{tiny, strings.Repeat(tiny, n-1)} }},
		{"url-pem", URLPEM, func(n int) []string { return []string{percentEncode(strings.Repeat(tiny+"\n", n))} }},
		{"aws-alb", AWSALB, func(n int) []string { return []string{percentEncode(strings.Repeat(tiny+"\n", n))} }},
		{"envoy-xfcc chain", XFCC, func(n int) []string {
			return []string{`Chain="` + percentEncode(strings.Repeat(tiny+"\n", n)) + `"`}
		}},
		{"haproxy chain", HAProxy, func(n int) []string { return []string{der, ders(n - 1)} }},
		{"base64-der", Base64DER, func(n int) []string { return []string{ders(n)} }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := tt.decode(tt.values(MaxCertificates))
			require.NoError(t, err, "as many certificates as allowed")
			require.Len(t, got, MaxCertificates)

			allocs := map[int]float64{}
			for _, n := range []int{MaxCertificates + 1, 100, 1000} {
				values := tt.values(n)
				got, err := tt.decode(values)
				require.ErrorContains(t, err, "more than 16 certificates", "%d certificates", n)
				require.Nil(t, got)
				allocs[n] = testing.AllocsPerRun(10, func() { _, _ = tt.decode(values) })
			}
			// Ten times the input, the same work: the count does not grow (the race detector
			// may move an allocation or two either way).
			assert.InDelta(t, allocs[100], allocs[1000], 2, "allocations at 100 and 1000 certificates")
		})
	}
}
