package api_test

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/candorlog/candor/api"
	"github.com/candorlog/candor/api/apitest"
)

// TestTrustedRoot: a certificate that a certificate authority of the
// trusted root issued is trusted while it is valid, and not before or
// after, nor one of another authority, nor a self-signed one.
func TestTrustedRoot(t *testing.T) {
	fulcio, other := apitest.NewFulcio("https://fulcio.example.com"), apitest.NewFulcio("https://rogue.example.com")
	tr, err := api.ParseTrustedRoot(apitest.TrustedRoot(fulcio))
	if err != nil {
		t.Fatal(err)
	}
	if got := tr.CertificateAuthorities(); len(got) != 1 || got[0] != "https://fulcio.example.com" {
		t.Errorf("CertificateAuthorities() = %q", got)
	}
	now := time.Now()
	der := func(s *apitest.ImageSigner) []byte {
		t.Helper()
		_, st, err := api.AdmitEntry(s.Submission("registry.example.com/app", "sha256:"+strings.Repeat("ab", 32)))
		if err != nil {
			t.Fatal(err)
		}
		return st.(api.CertificateStatement).SigningCertificate()
	}
	issued := der(apitest.NewImageSignerFromFulcio(fulcio, "ci@example.com", "https://issuer.example.com", now.Add(-time.Minute)))
	if err := tr.VerifyCertificate(issued, now); err != nil {
		t.Fatalf("a certificate the trusted authority issued a minute ago: %v", err)
	}
	for name, tc := range map[string]struct {
		der []byte
		at  time.Time
	}{
		"expired":                  {issued, now.Add(time.Hour)},
		"not yet valid":            {issued, now.Add(-time.Hour)},
		"of another authority":     {der(apitest.NewImageSignerFromFulcio(other, "ci@example.com", "https://issuer.example.com", now.Add(-time.Minute))), now},
		"self-signed":              {der(apitest.NewImageSignerWithCertificate("ci@example.com", "https://issuer.example.com")), now},
		"before the authority":     {issued, now.AddDate(-2, 0, 0)},
		"not a certificate at all": {[]byte("x"), now},
	} {
		err := tr.VerifyCertificate(tc.der, tc.at)
		var ee *api.EntryError
		if !errors.Is(err, api.ErrUntrustedCertificate) || !errors.As(err, &ee) {
			t.Errorf("%s: VerifyCertificate = %v, want an *EntryError wrapping ErrUntrustedCertificate", name, err)
		}
	}
	for _, bad := range []string{"", "{}", `{"mediaType":"application/vnd.dev.sigstore.trustedroot+json;version=0.1"}`, `{"mediaType":"x","certificateAuthorities":[]}`} {
		if _, err := api.ParseTrustedRoot([]byte(bad)); err == nil {
			t.Errorf("ParseTrustedRoot(%q): no error", bad)
		}
	}
}
