// Package clientflags holds the command-line flags that the example commands (whoami, diagnose)
// share to say which client certificates they trust and how they check revocation, so that a
// flag means the same to each of them.
package clientflags

import (
	"errors"
	"flag"
	"fmt"

	"github.com/certgate/mtls"
	"github.com/certgate/mtls/internal/redact"
)

// Pin registers -pin, repeatable, appending each fingerprint to pins once [mtls.ParseFingerprint]
// accepts it.
func Pin(fs *flag.FlagSet, pins *[]string) {
	fs.Func("pin", "also trust the client certificate with this SHA-256 fingerprint, whoever issued it (hex, colons allowed, or the line openssl x509 -noout -fingerprint -sha256 prints; repeatable)", func(v string) error {
		if _, err := mtls.ParseFingerprint(v); err != nil {
			return err
		}
		*pins = append(*pins, v)
		return nil
	})
}

// Revocation holds the revocation flags -ocsp, -ocsp-responder, -crl and -crl-dp, and the value
// of -fail-open, which each command registers with its own help text.
type Revocation struct {
	OCSP          bool     // check OCSP via the certificate's AIA
	OCSPResponder string   // OCSP responder override (implies -ocsp)
	CRLs          []string // CRL files and http(s) URLs
	CRLDP         bool     // fetch the certificates' CRL distribution points
	FailOpen      bool     // accept when revocation status is unavailable
}

// Register registers -ocsp, -ocsp-responder, -crl and -crl-dp on fs.
func (r *Revocation) Register(fs *flag.FlagSet) {
	fs.BoolVar(&r.OCSP, "ocsp", false, "check revocation by OCSP, asking the responder named in the certificate (AIA)")
	fs.StringVar(&r.OCSPResponder, "ocsp-responder", "", "check revocation by OCSP, asking this responder URL instead of the certificate's")
	fs.Func("crl", "check revocation against this CRL: a file path or an http(s) URL (repeatable)", func(s string) error {
		r.CRLs = append(r.CRLs, s)
		return nil
	})
	fs.BoolVar(&r.CRLDP, "crl-dp", false, "check revocation against the CRLs of the certificate's distribution points")
}

// Check reports flags that do not go together, and a -crl that is a URL but not an http(s) one
// (rather than reading it as a file name). A URL is printed without its secrets, as the
// middleware prints it.
func (r *Revocation) Check() error {
	for _, src := range r.CRLs {
		if redact.LooksLikeURL(src) && !redact.IsHTTP(src) {
			return fmt.Errorf("-crl %s: only http and https URLs are fetched", redact.URL(src))
		}
	}
	if r.FailOpen && r.Config() == nil {
		return errors.New("-fail-open needs -ocsp, -ocsp-responder, -crl or -crl-dp")
	}
	return nil
}

// Config builds the revocation configuration of the flags; nil when none asks for checking.
func (r *Revocation) Config() *mtls.RevocationConfig {
	rc := &mtls.RevocationConfig{DangerouslyFailOpen: r.FailOpen}
	if r.OCSP || r.OCSPResponder != "" {
		rc.OCSP = &mtls.OCSPConfig{Responder: r.OCSPResponder}
	}
	if len(r.CRLs) > 0 || r.CRLDP {
		rc.CRL = &mtls.CRLConfig{DistributionPoints: r.CRLDP}
		for _, src := range r.CRLs {
			if redact.IsHTTP(src) {
				rc.CRL.URLs = append(rc.CRL.URLs, src)
			} else {
				rc.CRL.Files = append(rc.CRL.Files, src)
			}
		}
	}
	if rc.OCSP == nil && rc.CRL == nil {
		return nil
	}
	return rc
}
