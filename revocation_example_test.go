package mtls_test

import (
	"fmt"
	"log"
	"net/http"
	"time"

	"github.com/certgate/mtls"
	"github.com/certgate/mtls/mtlstest"
)

// Revocation by OCSP, asking the responder each certificate names, with a CRL as the fallback
// when the responder cannot answer. Unknown status is refused with 503 by default.
func ExampleRevocationConfig() {
	root := mtlstest.NewRootCA("Example Root CA")
	issuing := root.NewIntermediate("Example Issuing CA")
	responder := mtlstest.NewOCSPResponder(issuing)
	defer responder.Close()

	alice := issuing.NewClient("alice", mtlstest.WithOCSPServer(responder.URL))
	mallory := issuing.NewClient("mallory", mtlstest.WithOCSPServer(responder.URL))
	responder.Revoke(mallory.Certificate.SerialNumber)

	m, err := mtls.New(mtls.Config{
		RootCAs: root.Pool(),
		Revocation: &mtls.RevocationConfig{
			OCSP:         &mtls.OCSPConfig{},                        // the certificate's AIA
			StaleIfError: 15 * time.Minute,                          // bounded grace when the responder fails
			Timeout:      3 * time.Second,                           // per OCSP query
			DenyList:     mtls.NewDenyList(),                        // revoke at once, reloadable
			CRL:          &mtls.CRLConfig{DistributionPoints: true}, // fallback: the certificate's CDP
		},
	})
	if err != nil {
		log.Fatal(err)
	}
	for _, leaf := range []*mtlstest.Leaf{alice, mallory} {
		if _, err := m.Authenticate(mtlstest.NewRequest(http.MethodGet, "https://api.example.test/", leaf.Chain()...)); err != nil {
			status, reason := mtls.StatusAndReason(err)
			fmt.Println(leaf.Certificate.Subject.CommonName, status, reason)
			continue
		}
		fmt.Println(leaf.Certificate.Subject.CommonName, "accepted")
	}
	// Output:
	// alice accepted
	// mallory 401 certificate_revoked
}

// A deny list file revokes certificates between two CRL publications; LoadFile swaps it in
// atomically and keeps the list in force if the file is bad.
func ExampleParseDenyList() {
	entries, err := mtls.ParseDenyList([]byte(`
# incident 2024-117: laptop stolen
sha256 3b:5e:8f:0f:3f:98:66:4c:3a:30:6e:25:2b:1e:b4:4d:57:f1:a6:a5:37:a3:ee:4d:1f:8f:57:93:d0:62:0a:f1
# every certificate for this key
spki-sha256 9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08
# serial 0x1f2e issued by the CA with this key
serial 2c26b46b68ffc68ff99b453c1d30413413422d706483bfa0f98a5e886266e7ae 0x1f2e
`))
	if err != nil {
		log.Fatal(err)
	}
	deny := mtls.NewDenyList(entries...)
	fmt.Println(deny.Len(), "entries")
	// Output: 3 entries
}
