package certheader

import "fmt"

// Traefik decodes X-Forwarded-Tls-Client-Cert: comma-separated base64 DER, each element
// possibly percent-escaped (the older form).
func Traefik(values []string) ([][]byte, error) {
	return leafAndChain(values, func(v string) ([][]byte, error) {
		return decodeList(v, func(e string) ([]byte, error) {
			s, err := percentDecode(e)
			if err != nil {
				return nil, err
			}
			return decodeOneDER(s, false)
		})
	}, nil)
}

// Apache decodes "%{SSL_CLIENT_CERT}s" and the "%{SSL_CLIENT_CERT_CHAIN_n}s" of the further
// headers, in order: PEM with spaces for line breaks, or the percent-escaped form of
// "expr=%{escape:...}"; "(null)" means absent. A chain header set after an absent one is
// refused.
func Apache(values []string) ([][]byte, error) {
	leaf, err := apacheValue(valueAt(values, 0))
	if err != nil {
		return nil, err
	}
	var ders [][]byte
	if leaf != nil {
		ders = append(ders, leaf[0])
	}
	gap := false
	for i := 1; i < len(values); i++ {
		c, err := apacheValue(valueAt(values, i))
		if err != nil {
			return nil, fmt.Errorf("chain header %d: %w", i-1, err)
		}
		if c == nil {
			gap = true
			continue
		}
		if leaf == nil {
			return nil, fmt.Errorf("a chain header without a certificate header")
		}
		if gap {
			return nil, fmt.Errorf("chain header %d set after an absent one", i-1)
		}
		ders = append(ders, c[0])
	}
	return ders, nil
}

// apacheValue decodes one Apache value: "(null)" or empty is absent.
func apacheValue(v string) ([][]byte, error) {
	if v == "" || v == "(null)" {
		return nil, nil
	}
	return one(decodeAnyPEM(v))
}
