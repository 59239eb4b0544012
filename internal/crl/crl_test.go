package crl

import (
	"testing"

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
