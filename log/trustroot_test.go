package log_test

import (
	"context"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/candorlog/candor/api"
	"github.com/candorlog/candor/api/apitest"
	"github.com/candorlog/candor/log"
)

// TestTrustedRootAdmission: a log with a trusted root takes the image
// signatures whose certificates its certificate authority issued and
// that are valid now, refuses with 400 the others (expired, of another
// authority, self-signed) and stores nothing of them; signatures with
// plain keys are taken as before.
func TestTrustedRootAdmission(t *testing.T) {
	fulcio, rogue := apitest.NewFulcio("https://fulcio.example.com"), apitest.NewFulcio("https://rogue.example.com")
	tr, err := api.ParseTrustedRoot(apitest.TrustedRoot(fulcio))
	if err != nil {
		t.Fatal(err)
	}
	h := newHTTPLog(t, log.Config{}, log.HandlerOptions{TrustedRoot: tr})
	ctx := context.Background()
	digest := func(i int) string { return "sha256:" + strings.Repeat(string("0123456789abcdef"[i]), 64) }
	now := time.Now()
	for i, tc := range []struct {
		name   string
		signer *apitest.ImageSigner
		code   int
	}{
		{"issued a minute ago", apitest.NewImageSignerFromFulcio(fulcio, "ci@example.com", "https://issuer.example.com", now.Add(-time.Minute)), http.StatusCreated},
		{"a plain key", apitest.NewImageSigner(), http.StatusCreated},
		{"expired", apitest.NewImageSignerFromFulcio(fulcio, "ci@example.com", "https://issuer.example.com", now.Add(-time.Hour)), http.StatusBadRequest},
		{"of another authority", apitest.NewImageSignerFromFulcio(rogue, "ci@example.com", "https://issuer.example.com", now.Add(-time.Minute)), http.StatusBadRequest},
		{"self-signed", apitest.NewImageSignerWithCertificate("ci@example.com", "https://issuer.example.com"), http.StatusBadRequest},
	} {
		_, before := h.log.Checkpoint()
		_, code, err := h.client.AddEntry(ctx, tc.signer.Submission("registry.example.com/app", digest(i)))
		if code != tc.code {
			t.Errorf("%s: %d (%v), want %d", tc.name, code, err, tc.code)
		}
		if tc.code != http.StatusCreated {
			if err == nil || !strings.Contains(err.Error(), "does not chain to a certificate authority the log trusts") {
				t.Errorf("%s: %v, want the reason", tc.name, err)
			}
			if _, after := h.log.Checkpoint(); after != before {
				t.Errorf("%s: the log grew from %d to %d", tc.name, before, after)
			}
		}
	}
}
