package crl

import (
	"crypto/x509/pkix"
	encasn1 "encoding/asn1"
	"math/big"
	"testing"

	"github.com/certgate/mtls/mtlstest"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestSerialSetRevocationDates(t *testing.T) {
	entry := func(date ...byte) []byte {
		e := append([]byte{0x02, 0x01, 0x05}, date...)
		return append([]byte{0x30, byte(len(e))}, e...)
	}
	utc := append([]byte{0x17, 0x0d}, "500101000000Z"...)
	gen := append([]byte{0x18, 0x0f}, "20510101000000Z"...)
	tests := []struct {
		name    string
		entries []byte
		wantErr bool
	}{
		{"UTCTime", entry(utc...), false},
		{"GeneralizedTime", entry(gen...), false},
		{"GeneralizedTime then UTCTime", append(entry(gen...), entry(utc...)...), false},
		{"no date", entry(), true},
		{"another tag", entry(append([]byte{0x04, 0x0f}, "20510101000000Z"...)...), true},
		{"truncated GeneralizedTime", entry(0x18, 0x0f, '2', '0'), true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var s SerialSet
			err := s.build(tt.entries)
			if tt.wantErr {
				require.Error(t, err)
				return
			}
			require.NoError(t, err)
			assert.True(t, s.Contains([]byte{5}))
		})
	}
}

// TestParseCRLNumber: RFC 5280 5.2.3 requires a cRLNumber in every CRL, non-critical, from 0 up.
func TestParseCRLNumber(t *testing.T) {
	ca := mtlstest.NewRootCA("CRL Number CA")
	number := pkix.Extension{Id: encasn1.ObjectIdentifier{2, 5, 29, 20}, Value: []byte{2, 1, 7}}
	tests := []struct {
		name    string
		spec    mtlstest.CRL
		want    int64
		wantErr string
	}{
		{"present", mtlstest.CRL{Number: big.NewInt(42)}, 42, ""},
		{"zero", mtlstest.CRL{Number: big.NewInt(0)}, 0, ""},
		{"absent", mtlstest.CRL{OmitNumber: true}, 0, "the CRL has no cRLNumber (RFC 5280 5.2.3): with openssl ca, set crlnumber in the CA section"},
		{"critical", mtlstest.CRL{CriticalNumber: true}, 0, "marked critical"},
		{"negative", mtlstest.CRL{Number: big.NewInt(-3)}, 0, "malformed cRLNumber"},
		{"twice", mtlstest.CRL{ExtraExtensions: []pkix.Extension{number}}, 0, "more than one cRLNumber"},
		{"trailing bytes", mtlstest.CRL{OmitNumber: true, ExtraExtensions: []pkix.Extension{{Id: number.Id, Value: []byte{2, 1, 7, 0}}}}, 0, "malformed cRLNumber"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := Parse(ca.NewCRL(tt.spec))
			if tt.wantErr != "" {
				require.ErrorContains(t, err, tt.wantErr)
				return
			}
			require.NoError(t, err)
			assert.Equal(t, tt.want, c.Number.Int64())
		})
	}
}
