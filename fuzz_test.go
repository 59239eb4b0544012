package mtls

import (
	"bytes"
	"math/big"
	"slices"
	"strings"
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

// FuzzParsePins: a pin file either parses to pins that each read back as a pin file of plain hex,
// or is refused; it never yields more pins than lines.
func FuzzParsePins(f *testing.F) {
	f.Add([]byte("8db667b1f6243512ce1ee075a0c7a7123602dcb519e452244839a416e54099e7\n"))
	f.Add([]byte("sha256 Fingerprint=8D:B6:67:B1:F6:24:35:12:CE:1E:E0:75:A0:C7:A7:12:36:02:DC:B5:19:E4:52:24:48:39:A4:16:E5:40:99:E7\n"))
	f.Add([]byte("# comment\n\nSHA1 Fingerprint=AB:CD\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		sums, err := parsePins(data)
		if err != nil {
			return
		}
		if len(sums) > bytes.Count(data, []byte("\n"))+1 {
			t.Fatalf("%d pins from %d lines", len(sums), bytes.Count(data, []byte("\n"))+1)
		}
		var again []byte
		for _, s := range sums {
			again = append(again, formatHex(s[:])+"\n"...)
		}
		back, err := parsePins(again)
		if err != nil || len(back) != len(sums) {
			t.Fatalf("round trip failed: %v", err)
		}
	})
}

// FuzzParseDenyList: a deny list document (a file, or a body fetched from DenyListURL) either
// parses to entries that read back the same when written out again, never more entries than
// lines, or is refused; a document cut short is refused whatever it holds.
func FuzzParseDenyList(f *testing.F) {
	const sum = "8db667b1f6243512ce1ee075a0c7a7123602dcb519e452244839a416e54099e7"
	f.Add([]byte("# none\n"))
	f.Add([]byte("sha256 " + sum + "\nspki-sha256 " + strings.ToUpper(sum) + "\n"))
	f.Add([]byte("serial " + sum + " 0x1000\n  # revoked 2026-12-01\nserial " + sum + " 00:ff:01\r\n"))
	f.Add([]byte("serial " + sum + " 4096\n"))
	f.Add([]byte("sha256 " + sum))
	f.Fuzz(func(t *testing.T, data []byte) {
		entries, err := ParseDenyList(data)
		if _, cut := denyEntries(data, true); cut == nil && err != nil {
			t.Fatalf("denyEntries accepts what ParseDenyList refuses: %v", err)
		}
		if len(data) > 0 && data[len(data)-1] != '\n' {
			if _, err := denyEntries(data, true); err == nil {
				t.Fatal("a document without a final newline was accepted")
			}
		}
		if err != nil {
			return
		}
		if len(entries) > bytes.Count(data, []byte("\n"))+1 {
			t.Fatalf("%d entries from %d lines", len(entries), bytes.Count(data, []byte("\n"))+1)
		}
		var again []byte
		for _, e := range entries {
			switch e.kind {
			case 'c':
				again = append(again, "sha256 "+formatHex(e.sum[:])+"\n"...)
			case 'k':
				again = append(again, "spki-sha256 "+formatHex(e.sum[:])+"\n"...)
			case 's':
				n := new(big.Int).SetBytes([]byte(e.serial))
				again = append(again, "serial "+formatHex(e.sum[:])+" "+FormatSerial(n)+"\n"...)
			default:
				t.Fatalf("entry of kind %q", e.kind)
			}
		}
		back, err := denyEntries(again, true)
		if err != nil || !slices.Equal(back, entries) {
			t.Fatalf("round trip failed: %v\n%s", err, again)
		}
	})
}
