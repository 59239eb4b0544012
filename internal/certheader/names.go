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
	if c == '_' {
		return '-'
	}
	return lowerByte(c)
}

// IsASCII says whether s holds ASCII bytes only.
func IsASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] >= 0x80 {
			return false
		}
	}
	return true
}

// EqualFoldASCII says whether a and b are equal with ASCII letters compared without regard to
// case; every other byte, non-ASCII ones included, must be equal. Unlike [strings.EqualFold] it
// folds no Unicode: "ſ" (U+017F) is not "s", nor the Kelvin sign "k".
func EqualFoldASCII(a, b string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := 0; i < len(a); i++ {
		if lowerByte(a[i]) != lowerByte(b[i]) {
			return false
		}
	}
	return true
}

// lowerByte maps an ASCII upper-case letter to its lower case, and every other byte to itself.
func lowerByte(c byte) byte {
	if 'A' <= c && c <= 'Z' {
		return c + 'a' - 'A'
	}
	return c
}
