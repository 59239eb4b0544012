// Package match holds the pure matching logic of the policies: the parsers and normalisers of
// the values a policy lists (DNS, email and URI patterns, IP prefixes, SPIFFE IDs, digests, serial
// numbers, attribute names and object identifiers, extended key usages) and the comparisons of
// those values with what a certificate holds. Strings in, values, verdicts or plain errors out:
// the policy types, their documents and their refusal reasons are the mtls package's.
package match

// Verdict is a matcher's answer. Undecided is for a value a rule cannot judge either way (such as
// a subject with two CNs, or a name spelled in a form equivalent to a listed one): it is neither
// allowed nor, under a negation, turned into an allowance.
type Verdict uint8

// The verdicts.
const (
	No Verdict = iota
	Yes
	Undecided
)

// Of is Yes for true and No for false.
func Of(b bool) Verdict {
	if b {
		return Yes
	}
	return No
}

// judge is Yes when one of vals matches, Undecided when none does but one is equivalent to a
// listed value (spelled differently), and No otherwise. equivalent, which may be costly, is asked
// only until one value is.
func judge[T any](vals []T, match, equivalent func(T) bool) Verdict {
	v := No
	for _, x := range vals {
		if match(x) {
			return Yes
		}
		if v == No && equivalent(x) {
			v = Undecided
		}
	}
	return v
}

// asciiLower lowercases ASCII letters only (strings.ToLower also maps some non-ASCII letters,
// such as the Kelvin sign, onto ASCII ones).
func asciiLower(s string) string {
	b := []byte(s)
	for i, c := range b {
		if c >= 'A' && c <= 'Z' {
			b[i] = c + 'a' - 'A'
		}
	}
	return string(b)
}

// asciiEqualFold compares s with a lowercase ASCII t, folding ASCII letters of s only.
func asciiEqualFold(s, t string) bool {
	if len(s) != len(t) {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c >= 'A' && c <= 'Z' {
			c += 'a' - 'A'
		}
		if c != t[i] {
			return false
		}
	}
	return true
}

// printableASCII reports whether s holds only printable ASCII characters other than space.
func printableASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] <= ' ' || s[i] >= 0x7f {
			return false
		}
	}
	return true
}
