package certheader

import (
	"fmt"
	"strings"
	"testing"
)

// hostileShapes are header values built to make a decoder work hard for a value it refuses (or,
// for the list formats, one that holds far more certificates than a chain can): each one takes
// the size in bytes of the values and returns the format's decoder and values of about that size.
var hostileShapes = []struct {
	format, shape string
	values        func(n int) (decoder, []string)
}{
	// many elements whose keys are allowed before the last element
	{"envoy-xfcc", "hash-elements", func(n int) (decoder, []string) {
		return XFCC, []string{strings.Repeat(`Hash=00,`, n/8) + `Cert="x"`}
	}},
	// one element of many pairs with unknown keys
	{"envoy-xfcc", "pairs", func(n int) (decoder, []string) {
		return XFCC, []string{strings.Repeat(`a=b;`, n/4) + `Cert="x"`}
	}},
	// unknown keys in the first element, which is not the last
	{"envoy-xfcc", "pairs-first", func(n int) (decoder, []string) {
		return XFCC, []string{strings.Repeat(`a=b;`, n/4) + `a=b,Cert="x"`}
	}},
	// quoted values full of escapes
	{"envoy-xfcc", "escaped-elements", func(n int) (decoder, []string) {
		e := `Subject="` + strings.Repeat(`\a`, 100) + `",`
		return XFCC, []string{strings.Repeat(e, n/len(e)) + `Cert="x"`}
	}},
	// XFCCBy: elements of earlier hops, each as full of names as allowed, refused at the end
	{"envoy-xfcc-by", "hops", func(n int) (decoder, []string) {
		e := "By=spiffe://a/front" + strings.Repeat(";DNS="+strings.Repeat("d", 8), min(maxXFCCPairs-1, n/16/15)) + ","
		return xfccByBackend, []string{strings.Repeat(e, min(maxXFCCElements-1, n/len(e))) + `By=spiffe://a/backend;Hash=00`}
	}},
	// XFCCBy: one element of as many pairs as allowed, again and again
	{"envoy-xfcc-by", "pairs", func(n int) (decoder, []string) {
		e := strings.Repeat("X=y;", maxXFCCPairs-1) + "X=y,"
		return xfccByBackend, []string{strings.Repeat(e, n/len(e))}
	}},
	{"rfc9440", "chain-list", func(n int) (decoder, []string) {
		return RFC9440, []string{":MAA=:", strings.Repeat(":MAA=:, ", n/8) + ":MAA=:"}
	}},
	{"traefik", "list", func(n int) (decoder, []string) {
		return Traefik, []string{strings.Repeat("MAA=,", n/5) + "MAA="}
	}},
	{"pem", "blocks", func(n int) (decoder, []string) {
		b := pemBegin + "MAA=" + pemEnd
		return PEM, []string{strings.Repeat(b, n/len(b))}
	}},
	{"pem", "begins", func(n int) (decoder, []string) {
		return PEM, []string{strings.Repeat(pemBegin, n/len(pemBegin))}
	}},
	{"url-pem", "blocks", func(n int) (decoder, []string) {
		b := percentEncode(pemBegin + "\nMAA=\n" + pemEnd + "\n")
		return URLPEM, []string{strings.Repeat(b, n/len(b))}
	}},
	{"url-pem", "escapes", func(n int) (decoder, []string) {
		return URLPEM, []string{strings.Repeat("%2D", n/3)}
	}},
	{"haproxy", "chain-der", func(n int) (decoder, []string) {
		return HAProxy, []string{"MAA=", strings.Repeat("MAAwADAA", n/8)} // 30 00, 30 00, ...
	}},
	{"apache", "chain-headers", func(n int) (decoder, []string) {
		b := pemBegin + " MAA= " + pemEnd
		return Apache, []string{b, b, b, b, strings.Repeat(" ", n)}
	}},
}

// BenchmarkDecodeHostile measures what a hostile value costs a decoder, by format, shape and
// size (the values of a request are at most 32 KiB by default).
func BenchmarkDecodeHostile(b *testing.B) {
	for _, s := range hostileShapes {
		for _, kib := range []int{1, 8, 32} {
			dec, values := s.values(kib << 10)
			b.Run(fmt.Sprintf("%s/%s/%dKiB", s.format, s.shape, kib), func(b *testing.B) {
				b.ReportAllocs()
				for b.Loop() {
					_, _ = dec(values)
				}
			})
		}
	}
}

// xfccByBackend is XFCCBy as the service whose proxy writes By=spiffe://a/backend sees it.
func xfccByBackend(values []string) ([][]byte, error) {
	ders, _, err := XFCCBy(values, []string{"spiffe://a/backend"})
	return ders, err
}
