package match

import (
	"errors"
	"strings"
)

type mailbox struct{ local, domain string }

// EmailSet is a set of email address patterns: an address ("alice@example.com"; the local part
// compares exactly, the domain ASCII case-insensitively; see Match for the near misses), or
// "@example.com" for any mailbox at exactly that domain. The zero value is empty.
type EmailSet struct{ boxes []mailbox }

// Add parses pattern and adds it; norm is its normalised form (the domain lowercased).
func (s *EmailSet) Add(pattern string) (norm string, err error) {
	if !printableASCII(pattern) {
		return "", errors.New("not a printable ASCII email address")
	}
	at := strings.LastIndexByte(pattern, '@')
	if at < 0 {
		return "", errors.New("not an email address (write @domain for any mailbox at a domain)")
	}
	local, domain := pattern[:at], asciiLower(pattern[at+1:])
	if strings.Contains(local, "*") {
		return "", errors.New("'*' is not a pattern here (write @domain for any mailbox at a domain)")
	}
	if err := CheckHostname(domain); err != nil {
		return "", errors.New("domain: " + err.Error())
	}
	s.boxes = append(s.boxes, mailbox{local, domain})
	return local + "@" + domain, nil
}

// Match is Yes when one of addrs matches a pattern, Undecided when one does once the trailing
// dot of its domain is removed, or its local part unquoted or compared ASCII case-insensitively
// (many mail systems read "Alice" and "alice" as one mailbox), and No otherwise.
func (s *EmailSet) Match(addrs []string) Verdict {
	v := No
	for _, e := range addrs {
		at := strings.LastIndexByte(e, '@')
		if at <= 0 {
			continue
		}
		local, domain := e[:at], e[at+1:]
		// A domain with a trailing dot names the same domain: undecided, not a mismatch.
		dotted, hasDot := strings.CutSuffix(domain, ".")
		for _, b := range s.boxes {
			exact := b.local == "" || b.local == local
			if !exact && !sameLocalPart(local, b.local) {
				continue
			}
			switch {
			case asciiEqualFold(domain, b.domain) && exact:
				return Yes
			case asciiEqualFold(domain, b.domain), hasDot && asciiEqualFold(dotted, b.domain):
				v = Undecided
			}
		}
	}
	return v
}

// sameLocalPart reports whether the local part local may name the mailbox want: equal once
// unquoted ("\"alice\"" is alice) and ASCII case-folded.
func sameLocalPart(local, want string) bool {
	if q, ok := strings.CutPrefix(local, `"`); ok && strings.HasSuffix(q, `"`) {
		var b strings.Builder
		for i := 0; i < len(q)-1; i++ {
			if q[i] == '\\' && i+1 < len(q)-1 {
				i++
			}
			b.WriteByte(q[i])
		}
		local = b.String()
	}
	return len(local) == len(want) && asciiEqualFold(local, asciiLower(want))
}
