package mtls

import (
	"testing"
)

// FuzzParseFingerprint: a fingerprint either parses to exactly the digits given or is refused.
func FuzzParseFingerprint(f *testing.F) {
	f.Add("8db667b1f6243512ce1ee075a0c7a7123602dcb519e452244839a416e54099e7")
	f.Add("8D:B6:67:B1:F6:24:35:12:CE:1E:E0:75:A0:C7:A7:12:36:02:DC:B5:19:E4:52:24:48:39:A4:16:E5:40:99:E7")
	f.Add("sha256 Fingerprint=8D:B6:67:B1:F6:24:35:12:CE:1E:E0:75:A0:C7:A7:12:36:02:DC:B5:19:E4:52:24:48:39:A4:16:E5:40:99:E7\n")
	f.Add("zz")
	f.Fuzz(func(t *testing.T, s string) {
		sum, err := ParseFingerprint(s)
		if err != nil {
			return
		}
		again, err := ParseFingerprint(formatHex(sum[:]))
		if err != nil || again != sum {
			t.Fatalf("round trip of %q failed: %v", s, err)
		}
	})
}

func formatHex(b []byte) string {
	const digits = "0123456789abcdef"
	out := make([]byte, 0, 2*len(b))
	for _, c := range b {
		out = append(out, digits[c>>4], digits[c&15])
	}
	return string(out)
}
