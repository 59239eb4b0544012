package mtls_test

import (
	"fmt"
	"log"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"time"

	"github.com/certgate/mtls"
	"github.com/certgate/mtls/mtlstest"
)

// Each partner is limited to the tier of its principal: here the principal is the certificate's
// common name, and partner-b's tier allows a burst of 2 and one request every 1,000 seconds, so
// its third request is refused with 429 and Retry-After while partner-a's are not.
func ExampleThrottleConfig() {
	ca := mtlstest.NewRootCA("Partners Root CA")
	start := time.Now()
	byCN, err := mtls.PrincipalFromSubject("CN")
	if err != nil {
		log.Fatal(err)
	}
	m, err := mtls.New(mtls.Config{
		RootCAs:    ca.Pool(),
		Principals: byCN,
		Throttle: &mtls.ThrottleConfig{
			Tiers: map[string]mtls.Tier{
				"gold":   {Rate: 50, Burst: 20},
				"bronze": {Rate: 0.001, Burst: 2},
			},
			Resolver: mtls.TierResolverFunc(func(id *mtls.Identity) (string, error) {
				if id.Principal == "partner-b" {
					return "bronze", nil
				}
				return "gold", nil
			}),
			Default: "bronze",
		},
		Logger: slog.New(slog.DiscardHandler),
		Now:    func() time.Time { return start }, // a stopped clock, for the output below
	})
	if err != nil {
		log.Fatal(err)
	}
	h := m.Handler(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {}))
	for _, partner := range []string{"partner-a", "partner-b"} {
		leaf := ca.NewClient(partner)
		for range 3 {
			w := httptest.NewRecorder()
			h.ServeHTTP(w, mtlstest.NewRequest("GET", "https://api.example.test/quote", leaf.Chain()...))
			fmt.Printf("%s %d Retry-After=%q\n", partner, w.Code, w.Header().Get("Retry-After"))
		}
	}
	// Output:
	// partner-a 200 Retry-After=""
	// partner-a 200 Retry-After=""
	// partner-a 200 Retry-After=""
	// partner-b 200 Retry-After=""
	// partner-b 200 Retry-After=""
	// partner-b 429 Retry-After="1000"
}

// A client that keeps presenting a refused certificate is answered 429 once it was refused Limit
// times within Window, without its certificate being verified again, until the window ends.
func ExampleRefusalThrottleConfig() {
	trusted := mtlstest.NewRootCA("Partners Root CA")
	stranger := mtlstest.NewRootCA("Unknown CA").NewClient("mallory")
	start := time.Now()
	m, err := mtls.New(mtls.Config{
		RootCAs:         trusted.Pool(),
		RefusalThrottle: &mtls.RefusalThrottleConfig{Limit: 2},
		Logger:          slog.New(slog.DiscardHandler),
		Now:             func() time.Time { return start }, // a stopped clock, for the output below
	})
	if err != nil {
		log.Fatal(err)
	}
	h := m.Handler(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {}))
	for range 3 {
		w := httptest.NewRecorder()
		h.ServeHTTP(w, mtlstest.NewRequest("GET", "https://api.example.test/", stranger.Chain()...))
		fmt.Printf("%d Retry-After=%q %s", w.Code, w.Header().Get("Retry-After"), w.Body.String())
	}
	// Output:
	// 401 Retry-After="" {"type":"about:blank","title":"Unauthorized","status":401,"reason":"certificate_untrusted"}
	// 401 Retry-After="" {"type":"about:blank","title":"Unauthorized","status":401,"reason":"certificate_untrusted"}
	// 429 Retry-After="60" {"type":"about:blank","title":"Too Many Requests","status":429,"reason":"too_many_refusals"}
}
