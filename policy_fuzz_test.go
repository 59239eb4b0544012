package mtls

import (
	"crypto/x509"
	"encoding/json"
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

// FuzzPolicyBuilders: whatever value a list matcher accepts writes back a document that loads
// again, and evaluates without panicking. (The value parsers themselves are fuzzed in
// internal/match.)
func FuzzPolicyBuilders(f *testing.F) {
	for _, s := range []string{"api.example.com", "*.svc.example.com", "API.Example.COM", "https://h/p?q=1", "urn:acme:*",
		"spiffe://acme.test/ns/prod/*", "alice@example.com", "@example.com", "10.0.0.0/8", "::ffff:1.2.3.4", "0x1f", "01:02",
		"clientAuth", "1.3.6.1.5.5.7.3.2", "*", strings.Repeat("ab", 32), strings.Repeat("ab", 20)} {
		f.Add(s)
	}
	ids := fuzzIdentities()
	f.Fuzz(func(t *testing.T, s string) {
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
			for _, id := range ids {
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
