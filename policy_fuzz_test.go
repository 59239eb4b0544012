package mtls

import (
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"net/url"
	"strings"
	"testing"
)

// FuzzParsePolicy: the loader never panics; whatever it accepts writes back a document that loads
// again into the same document, and evaluates without panicking.
func FuzzParsePolicy(f *testing.F) {
	f.Add([]byte(everyKey))
	f.Add([]byte(`{"all": [{"issuer": {"cn": ["Issuing CA"]}}, {"any": [{"subject": {"cn": ["alice"], "ou": ["payments"]}}, {"uri": ["spiffe://acme.test/ns/prod/*"]}]}]}`))
	f.Add([]byte(`{"not": {"dns": ["*.example.com"]}}`))
	f.Add([]byte(`{"subject": {"cn": ["a"], "cn": ["b"]}}`))
	f.Add([]byte(`{"extension": {"oid": "1.2.3", "der": ["0c0170"]}}`))
	f.Add([]byte(`{"min_validity": "1h"}`))
	f.Add([]byte(`{"ip": ["::ffff:10.0.0.0/104"]}`))
	f.Add([]byte(`[{"dns":`))
	ids := fuzzIdentities()
	f.Fuzz(func(t *testing.T, doc []byte) {
		p, err := ParsePolicy(doc)
		if err != nil {
			if p != nil {
				t.Fatal("a policy with an error")
			}
			if !strings.HasPrefix(err.Error(), "mtls: policy ") {
				t.Fatalf("error without its prefix: %v", err)
			}
			return
		}
		out, err := json.Marshal(p)
		if err != nil {
			t.Fatalf("accepted policy does not marshal: %v", err)
		}
		again, err := ParsePolicy(out)
		if err != nil {
			t.Fatalf("written form %s does not load: %v", out, err)
		}
		out2, err := json.Marshal(again)
		if err != nil || string(out2) != string(out) {
			t.Fatalf("not a fixed point:\n%s\n%s", out, out2)
		}
		for _, id := range ids {
			if (p.Check(id) == nil) != (again.Check(id) == nil) {
				t.Fatalf("the written form decides differently: %s", out)
			}
		}
	})
}

// FuzzPolicyPattern: the pattern compilers never panic, normalise to a form they accept again,
// and an exact DNS or URI pattern matches the name it was written from.
func FuzzPolicyPattern(f *testing.F) {
	for _, s := range []string{"api.example.com", "*.svc.example.com", "API.Example.COM", "*.com", "a..b", "xn--bcher-kva.example",
		"spiffe://acme.test/ns/prod/*", "https://h/p?q=1", "urn:acme:*", "https://api.example*", "HTTPS://h/", "https://[::1]:8/x",
		"spiffe://acme.test/a/../b", "alice@example.com", "@example.com", "10.0.0.0/8", "::ffff:1.2.3.4", "0x1f", "01:02", "4096",
		"\u212a.example.com", "\u0430pi.example.com"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		if norm, wildcard, msg := parseDNSPattern(s); msg == "" {
			if n2, w2, msg2 := parseDNSPattern(norm); msg2 != "" || n2 != norm || w2 != wildcard {
				t.Fatalf("dns %q normalises to %q, which does not load the same", s, norm)
			}
			p := Must(RequireDNSNames(s))
			name := norm
			if wildcard {
				name = "x" + norm[1:]
			}
			if p.Check(synth(&x509.Certificate{DNSNames: []string{name}})) != nil {
				t.Fatalf("dns pattern %q does not match %q", s, name)
			}
		}
		if base, prefix, msg := parseURIPattern(s); msg == "" {
			u, err := url.Parse(base)
			if err != nil {
				t.Fatalf("accepted %q but url.Parse fails: %v", base, err)
			}
			if !prefix && Must(RequireURIs(s)).Check(synth(&x509.Certificate{URIs: []*url.URL{u}})) != nil {
				t.Fatalf("uri pattern %q does not match itself", s)
			}
		}
		if u, err := url.Parse(s); err == nil {
			var buf [512]byte
			if b, ok := appendURI(buf[:0], u); ok && string(b) != u.String() {
				t.Fatalf("appendURI(%q) = %q, String() = %q", s, b, u.String())
			}
		}
		if f, ok := appendFolded(nil, s, 4*len(s)); !ok {
			t.Fatalf("the folded form of %q is longer than 4 times its length", s)
		} else if again, _ := appendFolded(nil, string(f), 4*len(f)); string(again) != string(f) {
			t.Fatalf("folding %q is not idempotent: %q, then %q", s, f, again)
		}
		for _, build := range listBuilders {
			p, err := build([]string{s})
			if err != nil {
				continue
			}
			out, mErr := json.Marshal(p)
			if mErr != nil {
				t.Fatal(mErr)
			}
			if _, err := ParsePolicy(out); err != nil {
				t.Fatalf("%q accepted, but its written form %s is not: %v", s, out, err)
			}
			for _, id := range fuzzIdentities() {
				_ = p.Check(id)
			}
		}
	})
}

func fuzzIdentities() []*Identity {
	return []*Identity{
		synth(&x509.Certificate{
			Subject: dn(oidCN, "alice", oidOU, "payments"), Issuer: dn(oidCN, "Issuing CA"),
			DNSNames: []string{"a.example.com"}, EmailAddresses: []string{"alice@acme.test"},
			URIs: uris("spiffe://acme.test/ns/prod/sa/alice"), IPAddresses: ips("10.1.2.3"),
		}),
		synth(&x509.Certificate{Subject: dn(oidCN, "eve,O=Admin", oidCN, "x")}),
	}
}

// FuzzParseSerial: the serial parser never panics, accepts only non-negative numbers of at most
// 128 bytes, and reads back what it is given in both forms of its notation.
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
		if n.Sign() < 0 || n.BitLen() > 8*maxSerialBytes {
			t.Fatalf("%q: accepted %v", s, n)
		}
		forms := []string{"0x" + n.Text(16)}
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
