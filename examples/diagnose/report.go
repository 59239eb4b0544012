package main

import (
	"cmp"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"time"

	"github.com/certgate/mtls"
)

// report is the outcome of a diagnosis. Its JSON keys are a stable contract (see the package doc).
type report struct {
	Accepted bool      `json:"accepted"`
	At       string    `json:"at"`
	Status   int       `json:"status,omitempty"`
	Reason   string    `json:"reason,omitempty"`
	Step     string    `json:"step,omitempty"`
	Error    string    `json:"error,omitempty"`
	Steps    []step    `json:"steps"`
	Identity *identity `json:"identity,omitempty"`
}

// step is the verdict of one pipeline step.
type step struct {
	Name    string `json:"name"`
	Verdict string `json:"verdict"` // ok, refused, not_reached or off
	Note    string `json:"note,omitempty"`
}

// Verdicts of a step.
const (
	verdictOK         = "ok"
	verdictRefused    = "refused"
	verdictNotReached = "not_reached"
	verdictOff        = "off"
)

// identity is what the middleware established about an accepted certificate.
type identity struct {
	Subject     string     `json:"subject"`
	Issuer      string     `json:"issuer"`
	Serial      string     `json:"serial"`
	SHA256      string     `json:"sha256"`
	DNS         []string   `json:"dns"`
	Emails      []string   `json:"emails"`
	URIs        []string   `json:"uris"`
	IPs         []string   `json:"ips"`
	SPIFFEID    string     `json:"spiffe_id,omitempty"`
	Chain       []string   `json:"chain"`
	Pinned      bool       `json:"pinned,omitempty"`
	Principal   string     `json:"principal,omitempty"`
	NotAfter    string     `json:"not_after"`
	ExpiresSoon bool       `json:"expires_soon,omitempty"`
	Revocation  revocation `json:"revocation"`
}

// revocation says how the revocation step passed.
type revocation struct {
	Checked  bool   `json:"checked"`
	Source   string `json:"source,omitempty"`
	Age      string `json:"age,omitempty"`
	Stale    bool   `json:"stale,omitempty"`
	FailOpen bool   `json:"fail_open,omitempty"`
}

// steps are the pipeline's steps for a certificate presented over TLS (parse is header mode's).
var steps = []string{"claim", "screen", "verify", "revocation", "principal", "policy"}

// newReport builds the report of the decision ev (and the identity id, on success) on certs,
// presented under the options o at now.
func newReport(o *options, now time.Time, certs []*x509.Certificate, ev *mtls.Event, id *mtls.Identity) *report {
	rep := &report{Accepted: ev.Err == nil && id != nil, At: now.UTC().Format(time.RFC3339)}
	names := steps
	refused := len(names) // index of the refusing step
	var e *mtls.Error
	if !rep.Accepted {
		rep.Status, rep.Reason = mtls.StatusAndReason(ev.Err)
		rep.Step, rep.Error = ev.Step, fmt.Sprint(ev.Err)
		if refused = slices.Index(names, ev.Step); refused < 0 { // a step of no TLS claim: shown last
			names = append(slices.Clone(steps), cmp.Or(ev.Step, "unknown"))
			refused = len(names) - 1
		}
		errors.As(ev.Err, &e)
	}
	off := map[string]string{}
	if o.rev.Config() == nil {
		off["revocation"] = "no -ocsp, -ocsp-responder, -crl or -crl-dp"
	}
	if o.bindingsPath == "" {
		off["principal"] = "no -bindings"
	}
	if o.policyFile == "" {
		off["policy"] = "no -policy"
	}
	for i, name := range names {
		s := step{Name: name, Verdict: verdictOK}
		switch {
		case i == refused:
			s.Verdict, s.Note = verdictRefused, rep.Reason+": "+explanation(e, ev.Err)
		case i > refused:
			s.Verdict = verdictNotReached
		case off[name] != "":
			s.Verdict, s.Note = verdictOff, off[name]
		default:
			s.Note = okNote(name, certs, ev, id)
		}
		rep.Steps = append(rep.Steps, s)
	}
	if rep.Accepted {
		rep.Identity = describe(id, ev)
	}
	return rep
}

// explanation is the operator-facing reason of a refusal, without the sentinel's text that the
// reason code already says.
func explanation(e *mtls.Error, err error) string {
	if e == nil {
		return fmt.Sprint(err)
	}
	msg := strings.TrimPrefix(e.Error(), e.Kind.Error())
	if msg = strings.TrimPrefix(msg, ": "); msg == "" {
		msg = strings.TrimPrefix(e.Kind.Error(), "mtls: ")
	}
	return msg
}

// okNote says what a step that passed found.
func okNote(name string, certs []*x509.Certificate, ev *mtls.Event, id *mtls.Identity) string {
	switch name {
	case "claim":
		return presented(certs)
	case "verify":
		if id == nil {
			return ""
		}
		if id.Pinned {
			return "pinned: the leaf's SHA-256 fingerprint is trusted"
		}
		return "chain " + strings.Join(quoted(id.Chain), " <- ")
	case "revocation":
		if id == nil {
			return ""
		}
		return revocationNote(id, ev)
	case "principal":
		if id == nil {
			return ""
		}
		if id.Principal == "" {
			return "no principal bound"
		}
		return fmt.Sprintf("%q", id.Principal)
	}
	return ""
}

// presented describes what the client presents.
func presented(certs []*x509.Certificate) string {
	q := quoted(certs)
	if len(q) == 1 {
		return fmt.Sprintf("1 certificate presented (leaf %s, alone)", q[0])
	}
	return fmt.Sprintf("%d certificates presented (leaf %s, then %s)", len(q), q[0], strings.Join(q[1:], ", "))
}

// quoted returns the quoted subjects of certs.
func quoted(certs []*x509.Certificate) []string {
	out := make([]string, len(certs))
	for i, c := range certs {
		out[i] = fmt.Sprintf("%q", c.Subject.String())
	}
	return out
}

// revocationNote describes how the revocation step passed.
func revocationNote(id *mtls.Identity, ev *mtls.Event) string {
	st := id.Revocation
	switch {
	case st.FailOpen:
		return fmt.Sprintf("DANGEROUS: status unknown, let through by -fail-open (%v)", st.Err)
	case st.Stale:
		return fmt.Sprintf("stale %s answer (next update %s), accepted while its source fails (%v)",
			ev.RevocationSource, st.NextUpdate.UTC().Format(time.RFC3339), st.Err)
	case ev.RevocationSource != "":
		return fmt.Sprintf("not revoked: %s answer %s old", ev.RevocationSource, ev.RevocationAge)
	case id.Pinned:
		return "pinned: no issuer to ask by OCSP or CRL"
	}
	return "not revoked"
}

// describe returns the identity of an accepted certificate.
func describe(id *mtls.Identity, ev *mtls.Event) *identity {
	out := &identity{
		Subject:     id.Leaf.Subject.String(),
		Issuer:      id.Leaf.Issuer.String(),
		Serial:      mtls.FormatSerial(id.Leaf.SerialNumber),
		SHA256:      id.SHA256,
		DNS:         append([]string{}, id.DNSNames...),
		Emails:      append([]string{}, id.EmailAddresses...),
		URIs:        []string{},
		IPs:         []string{},
		SPIFFEID:    id.SPIFFEID,
		Pinned:      id.Pinned,
		Principal:   id.Principal,
		NotAfter:    id.Leaf.NotAfter.UTC().Format(time.RFC3339),
		ExpiresSoon: id.ExpiresSoon,
		Revocation: revocation{
			Checked:  ev.RevocationSource != "" || id.Revocation.Degraded(),
			Source:   ev.RevocationSource,
			Stale:    id.Revocation.Stale,
			FailOpen: id.Revocation.FailOpen,
		},
	}
	if ev.RevocationSource != "" {
		out.Revocation.Age = ev.RevocationAge.String()
	}
	for _, u := range id.URIs {
		out.URIs = append(out.URIs, u.String())
	}
	for _, ip := range id.IPAddresses {
		out.IPs = append(out.IPs, ip.String())
	}
	for _, c := range id.Chain {
		out.Chain = append(out.Chain, c.Subject.String())
	}
	return out
}

// print writes the report as text.
func (rep *report) print(w io.Writer) {
	for _, s := range rep.Steps {
		verdict := strings.ReplaceAll(s.Verdict, "_", " ")
		if s.Verdict == verdictRefused {
			verdict = "REFUSED"
		}
		line(w, fmt.Sprintf("%-12s%-8s%s", s.Name, verdict, s.Note))
	}
	if !rep.Accepted {
		line(w, fmt.Sprintf("refused at %s: %d %s", rep.At, rep.Status, rep.Reason))
		return
	}
	line(w, "accepted at "+rep.At)
	id := rep.Identity
	field := func(name string, values ...string) {
		if v := strings.Join(values, ", "); v != "" {
			line(w, fmt.Sprintf("%-12s%s", name, v))
		}
	}
	field("subject", id.Subject)
	field("issuer", id.Issuer)
	field("serial", id.Serial)
	field("sha256", id.SHA256)
	field("dns", id.DNS...)
	field("emails", id.Emails...)
	field("uris", id.URIs...)
	field("ips", id.IPs...)
	field("spiffe_id", id.SPIFFEID)
	field("chain", strings.Join(id.Chain, " <- "))
	if id.Pinned {
		field("pinned", "yes")
	}
	field("principal", id.Principal)
	expiry := id.NotAfter
	if id.ExpiresSoon {
		expiry += " (expires soon)"
	}
	field("not_after", expiry)
	field("revocation", id.Revocation.String())
}

// line writes s and a newline, without trailing spaces.
func line(w io.Writer, s string) { fmt.Fprintln(w, strings.TrimRight(s, " ")) }

// String describes the revocation answer in a few words.
func (r revocation) String() string {
	switch {
	case r.FailOpen:
		return "fail-open: status unknown (DANGEROUS)"
	case r.Stale:
		return "stale " + r.Source + " answer"
	case r.Source != "":
		return r.Source + " answer, " + r.Age + " old"
	}
	return "not checked"
}
