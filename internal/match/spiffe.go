package match

import (
	"errors"
	"net/url"
	"strings"

	"github.com/certgate/mtls/internal/spiffeid"
)

// SPIFFESet is a set of SPIFFE ID patterns: an exact ID, or an ID followed by "/*" for any ID
// below it. The zero value is empty.
type SPIFFESet struct {
	uris     URISet   // the patterns as URI patterns: the IDs, and the prefixes ending in '/'
	prefixes []string // the prefixes, as strings
}

// Add parses pattern and adds it.
func (s *SPIFFESet) Add(pattern string) error {
	if base, ok := strings.CutSuffix(pattern, "/*"); ok {
		if spiffeid.Validate(base) != nil {
			return errors.New("not a SPIFFE ID followed by /*")
		}
		s.prefixes = append(s.prefixes, base+"/")
		s.uris.add(base+"/", true)
		return nil
	}
	if spiffeid.Validate(pattern) != nil {
		return errors.New("not a SPIFFE ID ('*' is only allowed as a final /* segment)")
	}
	s.uris.add(pattern, false)
	return nil
}

// Match judges id, the SPIFFE ID of a certificate whose URI SANs are uris: Yes when id is valid
// and matches a pattern. When id is not a valid SPIFFE ID (two URI SANs, bad syntax), it matches
// nothing, but a spiffe URI naming a listed ID, as written or normalised, is Undecided rather
// than No.
func (s *SPIFFESet) Match(id string, uris []*url.URL) Verdict {
	if spiffeid.Validate(id) != nil {
		for _, u := range uris {
			if u == nil || !strings.EqualFold(u.Scheme, "spiffe") {
				continue
			}
			if s.uris.match(u) || s.uris.equivalent(u) {
				return Undecided
			}
		}
		return No
	}
	if _, ok := s.uris.exact[id]; ok {
		return Yes
	}
	for _, p := range s.prefixes {
		if strings.HasPrefix(id, p) {
			return Yes
		}
	}
	return No
}
