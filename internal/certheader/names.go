package certheader

// SameName says whether two header names name the same header for some consumer: ASCII letters
// compare without regard to case, and "_" equals "-", since CGI, FastCGI and WSGI servers turn
// both X-SSL-Client-Cert and X_SSL_Client_Cert into HTTP_X_SSL_CLIENT_CERT. Other bytes, non-ASCII
// ones included, must be equal.
func SameName(a, b string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := 0; i < len(a); i++ {
		if foldName(a[i]) != foldName(b[i]) {
			return false
		}
	}
	return true
}

// foldName maps a byte of a header name to the one SameName compares.
func foldName(c byte) byte {
	switch {
	case 'A' <= c && c <= 'Z':
		return c + 'a' - 'A'
	case c == '_':
		return '-'
	}
	return c
}
