package main

import (
	"time"

	"github.com/certgate/mtls"
	"github.com/prometheus/client_golang/prometheus"
)

// Health is a [prometheus.Collector] of the middleware's health, read at each scrape:
//
//	mtls_reload_up{source}                                       1 if the last load succeeded
//	mtls_reload_last_success_timestamp_seconds{source}
//	mtls_reload_successes_total{source}                          loads that succeeded, New's included
//	mtls_revocation_source_up{source}                            1 if a CRL is loaded and its last refresh succeeded
//	mtls_revocation_crl_this_update_timestamp_seconds{source}    of the CRL in force
//	mtls_revocation_crl_next_update_timestamp_seconds{source}
//
// The reload source is "files" (what [mtls.Middleware.Reload] reads) or "deny_list_url"
// ([mtls.RevocationConfig.DenyListURL]), from [mtls.Middleware.ReloadStatus]; a revocation
// source is a CRL file or URL, from [mtls.Middleware.CRLStatus] (at most 256 distribution
// points besides the configured ones). Alert on an up of 0, and on a next update in the past.
// Error texts are not exported: they name files and hosts, and belong in the log.
type Health struct {
	mw                                   *mtls.Middleware
	reloadUp, reloadSuccess, reloadCount *prometheus.Desc
	crlUp, crlThisUpdate, crlNextUpdate  *prometheus.Desc
}

// NewHealth returns the collector of mw's health; register it with the registry of [Metrics].
func NewHealth(mw *mtls.Middleware) *Health {
	desc := func(name, help string) *prometheus.Desc {
		return prometheus.NewDesc(name, help, []string{"source"}, nil)
	}
	return &Health{
		mw:            mw,
		reloadUp:      desc("mtls_reload_up", "1 if the last load of the source succeeded, 0 if it failed (what was loaded before stays in force)."),
		reloadSuccess: desc("mtls_reload_last_success_timestamp_seconds", "When a load of the source last succeeded."),
		reloadCount:   desc("mtls_reload_successes_total", "Loads of the source that succeeded, the first included."),
		crlUp:         desc("mtls_revocation_source_up", "1 if a CRL of the source is loaded and its last refresh succeeded."),
		crlThisUpdate: desc("mtls_revocation_crl_this_update_timestamp_seconds", "thisUpdate of the source's CRL in force."),
		crlNextUpdate: desc("mtls_revocation_crl_next_update_timestamp_seconds", "nextUpdate of the source's CRL in force."),
	}
}

// Describe implements [prometheus.Collector].
func (h *Health) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{h.reloadUp, h.reloadSuccess, h.reloadCount, h.crlUp, h.crlThisUpdate, h.crlNextUpdate} {
		ch <- d
	}
}

// Collect implements [prometheus.Collector].
func (h *Health) Collect(ch chan<- prometheus.Metric) {
	gauge := func(d *prometheus.Desc, v float64, source string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v, source)
	}
	reload := func(source string, s mtls.SourceStatus) {
		gauge(h.reloadUp, up(s.LastError == ""), source)
		gauge(h.reloadSuccess, seconds(s.LastSuccess), source)
		ch <- prometheus.MustNewConstMetric(h.reloadCount, prometheus.CounterValue, float64(s.Generation), source)
	}
	st := h.mw.ReloadStatus()
	reload("files", st.Files)
	if st.DenyListURL != nil {
		reload("deny_list_url", *st.DenyListURL)
	}
	for _, c := range h.mw.CRLStatus() {
		gauge(h.crlUp, up(c.Loaded && c.Err == nil), c.Source)
		if c.Loaded {
			gauge(h.crlThisUpdate, seconds(c.ThisUpdate), c.Source)
			gauge(h.crlNextUpdate, seconds(c.NextUpdate), c.Source)
		}
	}
}

func up(ok bool) float64 {
	if ok {
		return 1
	}
	return 0
}

// seconds is t as a Unix timestamp; 0 for the zero time (never).
func seconds(t time.Time) float64 {
	if t.IsZero() {
		return 0
	}
	return float64(t.UnixNano()) / 1e9
}
