package mtls_test

import (
	"errors"
	"fmt"
	"log"
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
