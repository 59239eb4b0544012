package match

import (
	"encoding/hex"
	"net/url"
	"testing"
)

// FuzzPolicyPattern: the value parsers never panic, normalise to a form they accept again, and an
// exact DNS or URI pattern matches the name it was written from.
func FuzzPolicyPattern(f *testing.F) {
	for _, s := range []string{"api.example.com", "*.svc.example.com", "API.Example.COM", "*.com", "a..b", "xn--bcher-kva.example",
		"spiffe://acme.test/ns/prod/*", "https://h/p?q=1", "urn:acme:*", "https://api.example*", "HTTPS://h/", "https://[::1]:8/x",
		"spiffe://acme.test/a/../b", "alice@example.com", "@example.com", "10.0.0.0/8", "::ffff:1.2.3.4", "0x1f", "01:02", "4096",
		"\u212a.example.com", "\u0430pi.example.com",
		"https://H.:0443/a/./%7e%2f/..\\b?", "urn:EX:a", "https://[2001:DB8:0::1]:/"} {
		f.Add(s) // more seeds in testdata/fuzz/FuzzPolicyPattern
	}
	f.Fuzz(func(t *testing.T, s string) {
		var dns DNSSet
		if norm, err := dns.Add(s); err == nil {
			n2, w2, err2 := ParseDNSPattern(norm)
			if err2 != nil || n2 != norm || w2 != (norm[0] == '*') {
				t.Fatalf("dns %q normalises to %q, which does not load the same", s, norm)
			}
			name := norm
			if w2 {
				name = "x" + norm[1:]
			}
			if dns.Match([]string{name}) != Yes {
				t.Fatalf("dns pattern %q does not match %q", s, name)
			}
		}
		if base, prefix, err := ParseURIPattern(s); err == nil {
			u, err := url.Parse(base)
			if err != nil {
				t.Fatalf("accepted %q but url.Parse fails: %v", base, err)
			}
			var set URISet
			if err := set.Add(s); err != nil {
				t.Fatalf("ParseURIPattern accepts %q, URISet.Add does not: %v", s, err)
			}
			if !prefix && set.Match([]*url.URL{u}) != Yes {
				t.Fatalf("uri pattern %q does not match itself", s)
			}
		}
		if u, err := url.Parse(s); err == nil {
			c := Canonical(u)
			if !mayDiffer(u) && c != u.String() {
				t.Fatalf("Canonical(%q) = %q, but it is not looked at", s, c)
			}
			if v, err := url.Parse(c); err == nil && u.Scheme != "" && Canonical(v) != c {
				t.Fatalf("Canonical(%q) = %q, not canonical: %q", s, c, Canonical(v))
			}
			var buf [512]byte
			if b, ok := appendURI(buf[:0], u); ok && string(b) != u.String() {
				t.Fatalf("appendURI(%q) = %q, String() = %q", s, b, u.String())
			}
		}
		if f, ok := AppendFolded(nil, s, 4*len(s)); !ok {
			t.Fatalf("the folded form of %q is longer than 4 times its length", s)
		} else if again, _ := AppendFolded(nil, string(f), 4*len(f)); string(again) != string(f) {
			t.Fatalf("folding %q is not idempotent: %q, then %q", s, f, again)
		}
		var ips IPSet
		if norm, err := ips.Add(s); err == nil {
			if again, err := ips.Add(norm); err != nil || again != norm {
				t.Fatalf("ip %q normalises to %q, which does not load the same: %q, %v", s, norm, again, err)
			}
		}
		var ekus EKUSet
		if norm, err := ekus.Add(s); err == nil {
			if again, err := ekus.Add(norm); err != nil || again != norm {
				t.Fatalf("eku %q normalises to %q, which does not load the same: %q, %v", s, norm, again, err)
			}
		}
		if b, err := ParseSHA256Pin(s); err == nil {
			if again, err := ParseDigest(hex.EncodeToString(b), 32); err != nil || string(again) != string(b) {
				t.Fatalf("pin %q does not read back from hexadecimal: %v", s, err)
			}
		}
	})
}

// FuzzParseSerial: the serial parser never panics, accepts only non-negative numbers of at most
// 128 bytes, and reads back what it is given in both forms of its notation, FormatSerial's and
// the colon-separated bytes.
func FuzzParseSerial(f *testing.F) {
	f.Add("0x1000") // more seeds in testdata/fuzz/FuzzParseSerial
	f.Fuzz(func(t *testing.T, s string) {
		n, err := ParseSerial(s)
		if err != nil {
			if n != nil {
				t.Fatal("a serial with an error")
			}
			return
		}
		if n.Sign() < 0 || n.BitLen() > 8*MaxSerialBytes {
			t.Fatalf("%q: accepted %v", s, n)
		}
		forms := []string{FormatSerial(n)}
		if b := n.Bytes(); len(b) > 1 { // one byte has no colon form
			colon := hex.EncodeToString(b[:1])
			for _, c := range b[1:] {
				colon += ":" + hex.EncodeToString([]byte{c})
			}
			forms = append(forms, colon)
		}
		for _, form := range forms {
			if again, err := ParseSerial(form); err != nil || again.Cmp(n) != 0 {
				t.Fatalf("%q reads as %v, but its form %q does not read the same: %v, %v", s, n, form, again, err)
			}
		}
	})
}
