package main

import (
	"io"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestRevocationFlags(t *testing.T) {
	base := []string{"-client-ca", "ca.pem", "-tls-cert", "s.pem", "-tls-key", "k.pem"}
	tests := []struct {
		name      string
		args      []string
		wantErr   string
		ocsp      bool
		responder string
		files     []string
		urls      []string
		dp        bool
		failOpen  bool
	}{
		{name: "off"},
		{name: "ocsp via AIA", args: []string{"-ocsp"}, ocsp: true},
		{name: "ocsp responder override", args: []string{"-ocsp-responder", "http://127.0.0.1:9/"}, ocsp: true, responder: "http://127.0.0.1:9/"},
		{name: "crl file and URL", args: []string{"-crl", "a.crl", "-crl", "http://127.0.0.1:9/b.crl"}, files: []string{"a.crl"}, urls: []string{"http://127.0.0.1:9/b.crl"}},
		{name: "crl distribution points", args: []string{"-crl-dp"}, dp: true},
		{name: "fail open", args: []string{"-ocsp", "-fail-open"}, ocsp: true, failOpen: true},
		{name: "fail open alone", args: []string{"-fail-open"}, wantErr: "-fail-open needs"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			o, err := parseFlags(append(append([]string{}, base...), tt.args...), io.Discard)
			if tt.wantErr != "" {
				require.ErrorContains(t, err, tt.wantErr)
				return
			}
			require.NoError(t, err)
			rc := o.config(nil).Revocation
			if !tt.ocsp && tt.files == nil && tt.urls == nil && !tt.dp {
				assert.Nil(t, rc)
				return
			}
			require.NotNil(t, rc)
			assert.Equal(t, tt.failOpen, rc.DangerouslyFailOpen)
			if tt.ocsp {
				require.NotNil(t, rc.OCSP)
				assert.Equal(t, tt.responder, rc.OCSP.Responder)
			} else {
				assert.Nil(t, rc.OCSP)
			}
			if tt.files != nil || tt.urls != nil || tt.dp {
				require.NotNil(t, rc.CRL)
				assert.Equal(t, tt.files, rc.CRL.Files)
				assert.Equal(t, tt.urls, rc.CRL.URLs)
				assert.Equal(t, tt.dp, rc.CRL.DistributionPoints)
			} else {
				assert.Nil(t, rc.CRL)
			}
		})
	}
}
