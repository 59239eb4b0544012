package mtlstest

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"encoding/base64"
	"encoding/pem"
	"io"
	"math/big"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/crypto/cryptobyte"
	cbasn1 "golang.org/x/crypto/cryptobyte/asn1"
	"golang.org/x/crypto/ocsp"
)

// CRL describes a certificate revocation list for [CA.NewCRL]. The zero value is a valid, empty
// CRL issued now for a day.
type CRL struct {
	// ThisUpdate defaults to an hour ago.
	ThisUpdate time.Time
	// NextUpdate defaults to a day after ThisUpdate.
	NextUpdate time.Time
	// Number is the cRLNumber extension; nil: 1.
	Number *big.Int
	// OmitNumber leaves the cRLNumber extension out, and CriticalNumber marks it critical: to
	// mint CRLs that RFC 5280 forbids a conforming issuer to publish.
	OmitNumber, CriticalNumber bool
	// Revoked are the serial numbers listed.
	Revoked []*big.Int
	// RevokedSerials are more serial numbers, as big-endian unsigned bytes: the cheap way to mint
	// a CRL of millions of entries.
	RevokedSerials [][]byte
	// Entries are more revoked certificates, each with its own revocation date (RevocationTime;
	// zero: RevokedAt) and optional reason (ReasonCode, left out when 0); their other fields are
	// ignored.
	Entries []x509.RevocationListEntry
	// RevokedAt is the revocation date of the entries that give none; default ThisUpdate.
	RevokedAt time.Time
	// ExtraExtensions are added to the CRL extensions, such as an issuingDistributionPoint.
	ExtraExtensions []pkix.Extension
	// SignWith signs the CRL instead of the CA's key, to mint a CRL with a bad signature.
	SignWith crypto.Signer
}

// NewCRL mints a DER CRL issued and signed by ca (ECDSA, RSA and Ed25519 keys; SHA-256).
// It builds the DER directly, so a CRL of a million entries takes well under a second.
func (ca *CA) NewCRL(spec CRL) []byte {
	if spec.ThisUpdate.IsZero() {
		spec.ThisUpdate = time.Now().Add(-time.Hour)
	}
	if spec.NextUpdate.IsZero() {
		spec.NextUpdate = spec.ThisUpdate.Add(24 * time.Hour)
	}
	if spec.RevokedAt.IsZero() {
		spec.RevokedAt = spec.ThisUpdate
	}
	if spec.Number == nil {
		spec.Number = big.NewInt(1)
	}
	signer := spec.SignWith
	if signer == nil {
		signer = ca.Key
	}
	alg, hash := signatureAlgorithm(signer)
	date := encodeTime(spec.RevokedAt)

	var tbs cryptobyte.Builder
	tbs.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
		b.AddASN1Int64(1) // v2
		b.AddBytes(alg)
		b.AddBytes(ca.Certificate.RawSubject)
		b.AddBytes(encodeTime(spec.ThisUpdate))
		b.AddBytes(encodeTime(spec.NextUpdate))
		if len(spec.Revoked)+len(spec.Entries)+len(spec.RevokedSerials) > 0 {
			b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
				for _, s := range spec.Revoked {
					b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
						b.AddASN1BigInt(s)
						b.AddBytes(date)
					})
				}
				for _, e := range spec.Entries {
					b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
						b.AddASN1BigInt(e.SerialNumber)
						if e.RevocationTime.IsZero() {
							b.AddBytes(date)
						} else {
							b.AddBytes(encodeTime(e.RevocationTime))
						}
						if e.ReasonCode != 0 {
							b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
								addExtension(b, pkix.Extension{Id: asn1.ObjectIdentifier{2, 5, 29, 21}, Value: mustMarshal(asn1.Enumerated(e.ReasonCode))})
							})
						}
					})
				}
				b.AddBytes(encodeEntries(spec.RevokedSerials, date))
			})
		}
		b.AddASN1(cbasn1.Tag(0).Constructed().ContextSpecific(), func(b *cryptobyte.Builder) {
			b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
				if !spec.OmitNumber {
					addExtension(b, pkix.Extension{Id: asn1.ObjectIdentifier{2, 5, 29, 20}, Critical: spec.CriticalNumber,
						Value: mustMarshal(spec.Number)})
				}
				if kid := ca.Certificate.SubjectKeyId; len(kid) > 0 {
					aki := mustMarshal(struct {
						ID []byte `asn1:"optional,tag:0"`
					}{kid})
					addExtension(b, pkix.Extension{Id: asn1.ObjectIdentifier{2, 5, 29, 35}, Value: aki})
				}
				for _, e := range spec.ExtraExtensions {
					addExtension(b, e)
				}
			})
		})
	})
	tbsDER := tbs.BytesOrPanic()
	digest := tbsDER
	if hash != 0 {
		h := hash.New()
		h.Write(tbsDER)
		digest = h.Sum(nil)
	}
	var opts crypto.SignerOpts = hash
	sig, err := signer.Sign(rand.Reader, digest, opts)
	if err != nil {
		panic("mtlstest: sign CRL: " + err.Error())
	}
	var out cryptobyte.Builder
	out.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
		b.AddBytes(tbsDER)
		b.AddBytes(alg)
		b.AddASN1BitString(sig)
	})
	return out.BytesOrPanic()
}

// CRLPEM encodes a DER CRL (such as [CA.NewCRL] returns) as an "X509 CRL" PEM block.
func CRLPEM(der []byte) []byte {
	return pem.EncodeToMemory(&pem.Block{Type: "X509 CRL", Bytes: der})
}

// encodeEntries writes revokedCertificates entries by hand: a builder per entry would make CRLs
// of millions of entries slow to mint.
func encodeEntries(serials [][]byte, date []byte) []byte {
	out := make([]byte, 0, len(serials)*(len(date)+24))
	for _, s := range serials {
		for len(s) > 1 && s[0] == 0 {
			s = s[1:]
		}
		pad := len(s) == 0 || s[0]&0x80 != 0
		n := len(s)
		if pad {
			n++
		}
		if n > 126 || n+2+len(date) > 127 {
			panic("mtlstest: serial number too long")
		}
		out = append(out, 0x30, byte(n+2+len(date)), 0x02, byte(n))
		if pad {
			out = append(out, 0)
		}
		out = append(out, s...)
		out = append(out, date...)
	}
	return out
}

func addExtension(b *cryptobyte.Builder, e pkix.Extension) {
	b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
		b.AddASN1ObjectIdentifier(e.Id)
		if e.Critical {
			b.AddASN1Boolean(true)
		}
		b.AddASN1OctetString(e.Value)
	})
}

func mustMarshal(v any) []byte {
	der, err := asn1.Marshal(v)
	if err != nil {
		panic("mtlstest: marshal: " + err.Error())
	}
	return der
}

// encodeTime encodes t as RFC 5280 wants: UTCTime until 2049, GeneralizedTime after.
func encodeTime(t time.Time) []byte {
	var b cryptobyte.Builder
	t = t.UTC().Truncate(time.Second)
	if t.Year() < 2050 {
		b.AddASN1UTCTime(t)
	} else {
		b.AddASN1GeneralizedTime(t)
	}
	return b.BytesOrPanic()
}

// signatureAlgorithm returns the DER AlgorithmIdentifier and hash for signing with key.
func signatureAlgorithm(key crypto.Signer) ([]byte, crypto.Hash) {
	var b cryptobyte.Builder
	var h crypto.Hash
	b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
		switch k := key.Public().(type) {
		case *ecdsa.PublicKey:
			switch k.Curve {
			case elliptic.P384():
				b.AddASN1ObjectIdentifier(asn1.ObjectIdentifier{1, 2, 840, 10045, 4, 3, 3})
				h = crypto.SHA384
			case elliptic.P521():
				b.AddASN1ObjectIdentifier(asn1.ObjectIdentifier{1, 2, 840, 10045, 4, 3, 4})
				h = crypto.SHA512
			default:
				b.AddASN1ObjectIdentifier(asn1.ObjectIdentifier{1, 2, 840, 10045, 4, 3, 2})
				h = crypto.SHA256
			}
		case *rsa.PublicKey:
			b.AddASN1ObjectIdentifier(asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 1, 11})
			b.AddASN1NULL()
			h = crypto.SHA256
		case ed25519.PublicKey:
			b.AddASN1ObjectIdentifier(asn1.ObjectIdentifier{1, 3, 101, 112})
		default:
			panic("mtlstest: unsupported key type for a CRL")
		}
	})
	return b.BytesOrPanic(), h
}

// NewOCSPSigner mints a delegated OCSP responder certificate issued by ca, carrying the
// id-kp-OCSPSigning extended key usage (replace it with [WithExtKeyUsage] to mint a bad one).
func (ca *CA) NewOCSPSigner(commonName string, opts ...Option) *Leaf {
	return ca.newLeaf(newSpec(commonName, opts, func(s *spec) {
		s.tmpl.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageOCSPSigning}
		s.tmpl.KeyUsage = x509.KeyUsageDigitalSignature
	}))
}

// OCSPAnswer describes an OCSP response for [CA.NewOCSPResponse].
type OCSPAnswer struct {
	// Status is ocsp.Good (the zero value), ocsp.Revoked or ocsp.Unknown.
	Status int
	// ThisUpdate defaults to a minute ago.
	ThisUpdate time.Time
	// NextUpdate defaults to an hour after ThisUpdate.
	NextUpdate time.Time
	// NoNextUpdate leaves nextUpdate out of the response.
	NoNextUpdate bool
	// RevokedAt is the revocation time of a revoked certificate; default ThisUpdate.
	RevokedAt time.Time
	// Signer is a delegated responder (see [CA.NewOCSPSigner]) that signs and is embedded in the
	// response; nil: the CA signs.
	Signer *Leaf
}

// NewOCSPResponse mints a DER OCSP response about cert, which ca issued.
func (ca *CA) NewOCSPResponse(cert *x509.Certificate, a OCSPAnswer) []byte {
	if a.ThisUpdate.IsZero() {
		a.ThisUpdate = time.Now().Add(-time.Minute)
	}
	if a.NextUpdate.IsZero() && !a.NoNextUpdate {
		a.NextUpdate = a.ThisUpdate.Add(time.Hour)
	}
	if a.RevokedAt.IsZero() {
		a.RevokedAt = a.ThisUpdate
	}
	tmpl := ocsp.Response{
		Status:       a.Status,
		SerialNumber: cert.SerialNumber,
		ThisUpdate:   a.ThisUpdate,
		NextUpdate:   a.NextUpdate,
		RevokedAt:    a.RevokedAt,
	}
	responder, key := ca.Certificate, ca.Key
	if a.Signer != nil {
		responder, key = a.Signer.Certificate, a.Signer.Key
		tmpl.Certificate = a.Signer.Certificate
	}
	der, err := ocsp.CreateResponse(ca.Certificate, responder, tmpl, key)
	if err != nil {
		panic("mtlstest: OCSP response: " + err.Error())
	}
	return der
}

// OCSPResponder is an OCSP responder for ca's certificates on an httptest server, answering GET
// and POST requests: good unless told otherwise with [OCSPResponder.Revoke] or
// [OCSPResponder.SetStatus].
type OCSPResponder struct {
	// URL is the responder's URL, for [WithOCSPServer] or a configured override.
	URL string

	ca       *CA
	server   *httptest.Server
	requests atomic.Int64

	mu       sync.Mutex
	status   map[string]int
	asked    map[string]int // well-formed requests by serial
	signer   *Leaf
	validity time.Duration
}

// NewOCSPResponder starts a responder for ca's certificates, listening on 127.0.0.1 only, with
// request headers limited to 16 KiB and bodies to 64 KiB. Close it when done.
func NewOCSPResponder(ca *CA) *OCSPResponder {
	r := &OCSPResponder{ca: ca, status: map[string]int{}, asked: map[string]int{}, validity: time.Hour}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		panic("mtlstest: OCSP responder: " + err.Error())
	}
	r.server = &httptest.Server{
		Listener: ln,
		Config:   &http.Server{Handler: http.HandlerFunc(r.serve), MaxHeaderBytes: 16 << 10, ReadHeaderTimeout: 10 * time.Second},
	}
	r.server.Start()
	r.URL = r.server.URL
	return r
}

// Close shuts the responder down.
func (r *OCSPResponder) Close() { r.server.Close() }

// Requests is the number of OCSP requests received so far.
func (r *OCSPResponder) Requests() int { return int(r.requests.Load()) }

// RequestsFor is the number of well-formed OCSP requests received so far about the certificate
// with this serial number.
func (r *OCSPResponder) RequestsFor(serial *big.Int) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.asked[serial.String()]
}

// Revoke makes the responder answer "revoked" for serial.
func (r *OCSPResponder) Revoke(serial *big.Int) { r.SetStatus(serial, ocsp.Revoked) }

// SetStatus sets the answer for serial: ocsp.Good, ocsp.Revoked or ocsp.Unknown.
func (r *OCSPResponder) SetStatus(serial *big.Int, status int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.status[serial.String()] = status
}

// SetSigner makes a delegated responder certificate sign the responses (nil: the CA).
func (r *OCSPResponder) SetSigner(signer *Leaf) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.signer = signer
}

// SetValidity sets the time between thisUpdate and nextUpdate of the responses (default an hour).
func (r *OCSPResponder) SetValidity(d time.Duration) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.validity = d
}

func (r *OCSPResponder) serve(w http.ResponseWriter, req *http.Request) {
	r.requests.Add(1)
	var der []byte
	switch req.Method {
	case http.MethodGet:
		p, err := url.PathUnescape(strings.TrimPrefix(req.URL.EscapedPath(), "/"))
		if err == nil {
			der, err = base64.StdEncoding.DecodeString(p)
		}
		if err != nil {
			http.Error(w, "bad request", http.StatusBadRequest)
			return
		}
	case http.MethodPost:
		var err error
		if der, err = io.ReadAll(io.LimitReader(req.Body, 1<<16)); err != nil {
			http.Error(w, "bad request", http.StatusBadRequest)
			return
		}
	default:
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
		return
	}
	w.Header().Set("Content-Type", "application/ocsp-response")
	ocspReq, err := ocsp.ParseRequest(der)
	if err != nil {
		_, _ = w.Write(ocsp.MalformedRequestErrorResponse)
		return
	}
	r.mu.Lock()
	r.asked[ocspReq.SerialNumber.String()]++
	status := r.status[ocspReq.SerialNumber.String()]
	signer, validity := r.signer, r.validity
	r.mu.Unlock()
	now := time.Now().Add(-time.Minute)
	tmpl := ocsp.Response{
		Status:       status,
		SerialNumber: ocspReq.SerialNumber,
		ThisUpdate:   now,
		NextUpdate:   now.Add(validity),
		RevokedAt:    now,
		IssuerHash:   ocspReq.HashAlgorithm,
	}
	responder, key := r.ca.Certificate, r.ca.Key
	if signer != nil {
		responder, key = signer.Certificate, signer.Key
		tmpl.Certificate = signer.Certificate
	}
	resp, err := ocsp.CreateResponse(r.ca.Certificate, responder, tmpl, key)
	if err != nil {
		_, _ = w.Write(ocsp.InternalErrorErrorResponse)
		return
	}
	_, _ = w.Write(resp)
}
