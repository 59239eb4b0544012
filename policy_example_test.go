package mtls_test

import (
	"crypto/x509/pkix"
	"encoding/json"
	"fmt"
	"log"
	"net/http"
	"net/http/httptest"

	"github.com/certgate/mtls"
	"github.com/certgate/mtls/mtlstest"
)

// Policies compose in code: the issuing CA, and then either the payments team or a production
// workload.
func ExampleAll() {
	root := mtlstest.NewRootCA("Acme Root CA")
	issuing := root.NewIntermediate("Issuing CA")
	policy := mtls.All(
		mtls.Must(mtls.RequireIssuer(mtls.Attributes{"cn": {"Issuing CA"}})),
		mtls.Any(
			mtls.Must(mtls.RequireSubject(mtls.Attributes{"cn": {"alice"}, "ou": {"payments"}})),
			mtls.Must(mtls.RequireURIs("spiffe://acme.test/ns/prod/*")),
		),
	)
	m, err := mtls.New(mtls.Config{RootCAs: root.Pool()})
	if err != nil {
		log.Fatal(err)
	}
	clients := []*mtlstest.Leaf{
		issuing.NewClient("alice", mtlstest.WithSubject(pkix.Name{CommonName: "alice", OrganizationalUnit: []string{"payments"}})),
		issuing.NewClient("billing", mtlstest.WithURIs("spiffe://acme.test/ns/prod/sa/billing")),
		issuing.NewClient("bob", mtlstest.WithURIs("spiffe://acme.test/ns/dev/sa/bob")),
	}
	for _, c := range clients {
		id, err := m.Authenticate(mtlstest.NewRequest(http.MethodGet, "https://api.example.test/", c.Chain()...))
		if err != nil {
			log.Fatal(err)
		}
		fmt.Printf("%s: %v\n", c.Certificate.Subject.CommonName, policy.Check(id) == nil)
	}
	// Output:
	// alice: true
	// billing: true
	// bob: false
}

// Attributes are compared one by one from the parsed name: a common name that looks like an RFC
// 4514 rendering does not add an organization.
func ExampleRequireSubject() {
	root := mtlstest.NewRootCA("Acme Root CA")
	eve := root.NewClient("eve,O=Admin")
	m, _ := mtls.New(mtls.Config{RootCAs: root.Pool()})
	id, err := m.Authenticate(mtlstest.NewRequest(http.MethodGet, "https://api.example.test/", eve.Chain()...))
	if err != nil {
		log.Fatal(err)
	}
	admins := mtls.Must(mtls.RequireSubject(mtls.Attributes{"o": {"Admin"}}))
	fmt.Println(id.Leaf.Subject.String())
	fmt.Println(admins.Check(id))
	// Output:
	// CN=eve\,O=Admin
	// mtls: not matched: subject {"o":["Admin"]}
}

// The same policies load from JSON, for configuration files. json.Marshal writes them back.
func ExampleParsePolicy() {
	policy, err := mtls.ParsePolicy([]byte(`{"all": [
		{"issuer": {"cn": ["Issuing CA"]}},
		{"any": [{"subject": {"cn": ["alice"], "ou": ["payments"]}}, {"uri": ["spiffe://acme.test/ns/prod/*"]}]},
		{"not": {"dns": ["*.staging.acme.test"]}}
	]}`))
	if err != nil {
		log.Fatal(err)
	}
	out, _ := json.Marshal(policy)
	fmt.Println(string(out))

	_, err = mtls.ParsePolicy([]byte(`{"all": [{"issuer": {"cn": ["Issuing CA"]}}, {"any": [{"uri": []}]}]}`))
	fmt.Println(err)
	// Output:
	// {"all":[{"issuer":{"cn":["Issuing CA"]}},{"any":[{"subject":{"cn":["alice"],"ou":["payments"]}},{"uri":["spiffe://acme.test/ns/prod/*"]}]},{"not":{"dns":["*.staging.acme.test"]}}]}
	// mtls: policy $.all[1].any[0].uri: empty list
}

// Router-wide, the middleware requires a certificate; one route also requires a policy. Refusals
// tell the client only a reason code.
func ExampleMiddleware_Require() {
	root := mtlstest.NewRootCA("Acme Root CA")
	m, err := mtls.New(mtls.Config{RootCAs: root.Pool()})
	if err != nil {
		log.Fatal(err)
	}
	ops := mtls.Must(mtls.RequireSubject(mtls.Attributes{"ou": {"ops"}}))
	ok := http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { fmt.Fprint(w, "ok") })

	mux := http.NewServeMux()
	mux.Handle("/health", ok)                           // public
	mux.Handle("/orders", m.Handler(ok))                // any valid certificate
	mux.Handle("/admin", m.Handler(m.Require(ops)(ok))) // valid certificate of the ops team

	alice := root.NewClient("alice")
	olga := root.NewClient("olga", mtlstest.WithSubject(pkix.Name{CommonName: "olga", OrganizationalUnit: []string{"ops"}}))
	for _, r := range []*http.Request{
		httptest.NewRequest(http.MethodGet, "https://api.example.test/health", nil),
		mtlstest.NewRequest(http.MethodGet, "https://api.example.test/orders", alice.Chain()...),
		mtlstest.NewRequest(http.MethodGet, "https://api.example.test/admin", alice.Chain()...),
		mtlstest.NewRequest(http.MethodGet, "https://api.example.test/admin", olga.Chain()...),
	} {
		w := httptest.NewRecorder()
		mux.ServeHTTP(w, r)
		fmt.Println(r.URL.Path, w.Code, w.Body.String())
	}
	// Output:
	// /health 200 ok
	// /orders 200 ok
	// /admin 403 {"type":"about:blank","title":"Forbidden","status":403,"reason":"policy_denied"}
	//
	// /admin 200 ok
}

// Principals: an explicit binding first, then "the CN is the account" for one partner CA, then a
// tenant-wide default.
func ExamplePrincipalChain() {
	root := mtlstest.NewRootCA("Acme Root CA")
	partnerCA := root.NewIntermediate("Partner CA")
	billing := root.NewClient("svc-7f3a")
	bindings, err := mtls.NewBindings(mtls.Binding{Principal: "billing", Certificate: billing.Certificate})
	if err != nil {
		log.Fatal(err)
	}
	cn, _ := mtls.PrincipalFromSubject("cn")
	fromPartner := mtls.Must(mtls.RequireIssuer(mtls.Attributes{"cn": {"Partner CA"}}))

	m, err := mtls.New(mtls.Config{
		RootCAs: root.Pool(),
		Principals: mtls.PrincipalChain{
			bindings,
			mtls.PrincipalWhen(fromPartner, cn),
			mtls.StaticPrincipal("tenant-acme"),
		},
	})
	if err != nil {
		log.Fatal(err)
	}
	// A renewal with the same key keeps its binding.
	renewed := root.NewClient("svc-7f3a", mtlstest.WithKey(billing.Key))
	for _, c := range []*mtlstest.Leaf{billing, renewed, partnerCA.NewClient("globex"), root.NewClient("kiosk-12")} {
		id, err := m.Authenticate(mtlstest.NewRequest(http.MethodGet, "https://api.example.test/", c.Chain()...))
		if err != nil {
			log.Fatal(err)
		}
		fmt.Println(c.Certificate.Subject.CommonName, "->", id.Principal)
	}
	// Output:
	// svc-7f3a -> billing
	// svc-7f3a -> billing
	// globex -> globex
	// kiosk-12 -> tenant-acme
}

// A shadow policy reports what a stricter rule would do, without refusing anything.
func ExampleConfig_shadowPolicy() {
	root := mtlstest.NewRootCA("Acme Root CA")
	m, err := mtls.New(mtls.Config{
		RootCAs:      root.Pool(),
		ShadowPolicy: mtls.Must(mtls.RequireSPIFFEIDs("spiffe://acme.test/*")),
		OnShadow: func(_ *http.Request, res mtls.ShadowResult) {
			fmt.Printf("%s would be allowed: %v\n", res.Identity.Leaf.Subject.CommonName, res.WouldAllow())
		},
	})
	if err != nil {
		log.Fatal(err)
	}
	h := m.Handler(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { fmt.Fprint(w, "ok") }))
	for _, c := range []*mtlstest.Leaf{
		root.NewClient("billing", mtlstest.WithURIs("spiffe://acme.test/billing")),
		root.NewClient("legacy"),
	} {
		w := httptest.NewRecorder()
		h.ServeHTTP(w, mtlstest.NewRequest(http.MethodGet, "https://api.example.test/", c.Chain()...))
		fmt.Println(w.Code)
	}
	// Output:
	// billing would be allowed: true
	// 200
	// legacy would be allowed: false
	// 200
}
