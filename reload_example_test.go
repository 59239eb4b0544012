package mtls_test

import (
	"errors"
	"fmt"
	"log"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"

	"github.com/certgate/mtls"
	"github.com/certgate/mtls/mtlstest"
)

// Reload swaps every file in at once, or nothing: a bad file keeps what is in force, and the
// error and ReloadStatus name it.
func ExampleMiddleware_Reload() {
	dir, err := os.MkdirTemp("", "reload")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(dir)
	roots := filepath.Join(dir, "clients-ca.pem")
	ca := mtlstest.NewRootCA("Clients CA")
	if err := os.WriteFile(roots, ca.CertPEM(), 0o600); err != nil {
		log.Fatal(err)
	}
	m, err := mtls.New(mtls.Config{RootCAFiles: []string{roots}})
	if err != nil {
		log.Fatal(err)
	}
	defer m.Close()

	_ = os.WriteFile(roots, []byte("not PEM"), 0o600) // a bad edit
	err = m.Reload()
	var ce *mtls.ConfigError
	if errors.As(err, &ce) {
		fmt.Println("reload failed:", ce.Field)
	}
	st := m.ReloadStatus().Files
	fmt.Println("generation in force:", st.Generation, "error reported:", st.LastError != "")

	_ = os.WriteFile(roots, ca.CertPEM(), 0o600) // fixed
	fmt.Println("reload:", m.Reload())
	fmt.Println("generation in force:", m.ReloadStatus().Files.Generation)
	// Output:
	// reload failed: RootCAFiles[0]
	// generation in force: 1 error reported: true
	// reload: <nil>
	// generation in force: 2
}

// A route's policy read from a file follows Reload (and Config.ReloadInterval) with the other
// files of the configuration.
func ExampleLoadPolicyFile() {
	dir, err := os.MkdirTemp("", "route-policy")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(dir)
	root := mtlstest.NewRootCA("Acme Root CA")
	admins := filepath.Join(dir, "admins.json")
	if err := os.WriteFile(admins, []byte(`{"subject": {"cn": ["alice"]}}`), 0o600); err != nil {
		log.Fatal(err)
	}
	m, err := mtls.New(mtls.Config{RootCAs: root.Pool()})
	if err != nil {
		log.Fatal(err)
	}
	defer m.Close()
	policy, err := mtls.LoadPolicyFile(admins)
	if err != nil {
		log.Fatal(err)
	}
	ok := http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { fmt.Fprint(w, "ok") })
	admin := m.Handler(m.Require(policy)(ok))
	bob := root.NewClient("bob")
	call := func() int {
		w := httptest.NewRecorder()
		admin.ServeHTTP(w, mtlstest.NewRequest(http.MethodGet, "https://api.example.test/admin", bob.Chain()...))
		return w.Code
	}

	fmt.Println("bob:", call())
	_ = os.WriteFile(admins, []byte(`{"subject": {"cn": ["alice", "bob"]}}`), 0o600)
	fmt.Println("reload:", m.Reload())
	fmt.Println("bob:", call())
	_ = os.WriteFile(admins, []byte(`{"subject": {"cn": []}}`), 0o600) // a bad edit
	var ce *mtls.ConfigError
	if err := m.Reload(); errors.As(err, &ce) {
		fmt.Println("reload failed:", ce.Field)
	}
	fmt.Println("bob:", call())
	// Output:
	// bob: 403
	// reload: <nil>
	// bob: 200
	// reload failed: route policy
	// bob: 200
}
