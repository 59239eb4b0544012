// Package certfile reads the files the configuration names: bounded reads, and the PEM blocks of
// certificates and CRLs. Bytes in, values or plain errors out.
package certfile

import (
	"bytes"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"os"
)

// Read returns the contents of the regular file at path (symbolic links followed), refusing a
// file larger than max bytes without reading more than max+1 of them. Anything else (a named
// pipe, a device, a directory) is refused before it is opened, so that a read never blocks on a
// writer that does not come.
func Read(path string, max int64) ([]byte, error) {
	fi, err := os.Stat(path)
	if err != nil {
		return nil, err
	}
	if !fi.Mode().IsRegular() {
		return nil, fmt.Errorf("%s is not a regular file", path)
	}
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	if fi, err = f.Stat(); err != nil {
		return nil, err
	}
	if !fi.Mode().IsRegular() { // replaced between the two looks
		return nil, fmt.Errorf("%s is not a regular file", path)
	}
	if fi.Size() > max {
		return nil, fmt.Errorf("%s is larger than %d bytes", path, max)
	}
	buf := bytes.NewBuffer(make([]byte, 0, fi.Size()+1)) // +1: to see the end without growing
	if _, err := buf.ReadFrom(io.LimitReader(f, max+1)); err != nil {
		return nil, err
	}
	if int64(buf.Len()) > max { // grew since it was looked at
		return nil, fmt.Errorf("%s is larger than %d bytes", path, max)
	}
	return buf.Bytes(), nil
}

// Certificates parses every CERTIFICATE block of PEM data. Text between blocks (as in bundles that
// comment each certificate) is allowed; a block of another type, a certificate that does not
// parse, a block that does not decode, or data without any certificate is an error.
func Certificates(data []byte) ([]*x509.Certificate, error) {
	var certs []*x509.Certificate
	for {
		var block *pem.Block
		block, data = pem.Decode(data)
		if block == nil {
			break
		}
		if block.Type != "CERTIFICATE" {
			return nil, fmt.Errorf("PEM block %d is %q, want CERTIFICATE", len(certs)+1, block.Type)
		}
		c, err := x509.ParseCertificate(block.Bytes)
		if err != nil {
			return nil, fmt.Errorf("certificate %d: %w", len(certs)+1, err)
		}
		certs = append(certs, c)
	}
	if len(certs) == 0 {
		return nil, errors.New("no PEM certificate found")
	}
	if bytes.Contains(data, []byte("-----BEGIN")) {
		return nil, fmt.Errorf("undecodable PEM block after certificate %d", len(certs))
	}
	return certs, nil
}

// DER returns data itself when it is not PEM, or the contents of its first PEM block of type
// typ (such as "X509 CRL").
func DER(data []byte, typ string) ([]byte, error) {
	if !bytes.HasPrefix(bytes.TrimLeft(data, " \t\r\n"), []byte("-----BEGIN")) {
		return data, nil
	}
	for rest := data; ; {
		var block *pem.Block
		block, rest = pem.Decode(rest)
		if block == nil {
			return nil, fmt.Errorf("no %s PEM block", typ)
		}
		if block.Type == typ {
			return block.Bytes, nil
		}
	}
}
