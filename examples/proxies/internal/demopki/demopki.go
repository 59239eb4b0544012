// Package demopki writes, for the tests of examples/proxies, the files that
// examples/whoami/make-certs.sh makes, under the same names, from mtlstest: no openssl needed.
package demopki

import (
	"github.com/certgate/mtls/mtlstest"
)

// PKI is a demo PKI written by [Write].
type PKI struct {
	Dir       string // the directory, like make-certs.sh's mtls-demo
	ClientsCA *mtlstest.CA
	ServerCA  *mtlstest.CA
	Server    *mtlstest.Leaf // for 127.0.0.1 and localhost
	Client    *mtlstest.Leaf // alice
}

// Write mints a demo PKI and writes it into dir: clients-ca.pem, server-ca.pem, server.pem,
// server-key.pem, client.pem and client-key.pem.
func Write(dir string) *PKI {
	p := &PKI{Dir: dir, ClientsCA: mtlstest.NewRootCA("Demo Clients CA"), ServerCA: mtlstest.NewRootCA("Demo Server CA")}
	p.Server = p.ServerCA.NewServer("127.0.0.1", "localhost")
	p.Client = p.ClientsCA.NewClient("alice")
	for name, data := range map[string][]byte{
		"clients-ca.pem": p.ClientsCA.CertPEM(), "server-ca.pem": p.ServerCA.CertPEM(),
		"server.pem": p.Server.CertPEM(), "server-key.pem": p.Server.KeyPEM(),
		"client.pem": p.Client.CertPEM(), "client-key.pem": p.Client.KeyPEM(),
	} {
		mtlstest.WriteFile(dir, name, data)
	}
	return p
}
