package noredirect_test

import (
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/candorlog/candor/internal/noredirect"
)

func TestClientFollowsNoRedirect(t *testing.T) {
	var reached atomic.Int64
	target := httptest.NewServer(http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
		reached.Add(1)
		rw.Write([]byte("ok"))
	}))
	defer target.Close()
	for _, code := range []int{http.StatusMovedPermanently, http.StatusFound, http.StatusSeeOther, http.StatusTemporaryRedirect, http.StatusPermanentRedirect} {
		redirect := httptest.NewServer(http.RedirectHandler(target.URL+"/there", code))
		own := &http.Client{Timeout: time.Minute}
		for _, c := range []*http.Client{nil, own} {
			resp, err := noredirect.Client(c).Post(redirect.URL, "text/plain", strings.NewReader("body"))
			if err != nil {
				t.Fatalf("%d: %v", code, err)
			}
			resp.Body.Close()
			err = noredirect.Check(resp)
			if resp.StatusCode != code || !errors.Is(err, noredirect.ErrRedirect) {
				t.Fatalf("%d: reply %s, Check = %v; want the redirect itself, refused", code, resp.Status, err)
			}
			for _, want := range []string{resp.Status, target.URL + "/there", "redirects are not followed"} {
				if !strings.Contains(err.Error(), want) {
					t.Errorf("%d: Check = %q, which does not say %q", code, err, want)
				}
			}
		}
		redirect.Close()
		if own.CheckRedirect != nil || own.Timeout != time.Minute {
			t.Fatalf("the caller's client was changed: %+v", own)
		}
	}
	if n := reached.Load(); n != 0 {
		t.Fatalf("the redirect's target got %d requests", n)
	}
	// The client works, and Check passes other statuses.
	resp, err := noredirect.Client(nil).Get(target.URL)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if err := noredirect.Check(resp); err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("GET the target: %s, Check = %v", resp.Status, err)
	}
	if err := noredirect.Check(&http.Response{StatusCode: http.StatusNotFound, Status: "404 Not Found"}); err != nil {
		t.Fatalf("Check(404) = %v, want nil", err)
	}
}
