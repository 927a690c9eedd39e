package log_test

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/candorlog/candor/api/apitest"
	"github.com/candorlog/candor/internal/httplimit/httplimittest"
	"github.com/candorlog/candor/log"
)

// TestHTTPSlowBodies: clients that send a submission's headers and one
// byte of its body hold no submission slot (real submissions still get
// 201), get 408 when the body does not come in time and 400 when they
// hang up, and more of them from one address than its limit get 429 at
// once, while other addresses are served. None of it is logged as an
// error: each is a debug line.
func TestHTTPSlowBodies(t *testing.T) {
	logs := new(syncBuffer)
	logger := slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	h := newHTTPLog(t, log.Config{}, log.HandlerOptions{})
	signer := apitest.NewBuildSignerFromSeed([]byte("TestHTTPSlowBodies"))
	n := 0
	submit := func(s *httptest.Server) int {
		t.Helper()
		n++
		d := sha256.Sum256(fmt.Append(nil, "slow ", n))
		resp, err := http.Post(s.URL+"/v1/entries", "application/json", bytes.NewReader(signer.Submission(fmt.Sprint("artifact-", n), hex.EncodeToString(d[:]))))
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusCreated {
			t.Logf("submission: %d %s", resp.StatusCode, b)
		}
		return resp.StatusCode
	}

	// As many slow clients as submission slots, which would have them all.
	const slots = 3
	s := httplimittest.NewWatchedServer(t, log.NewHandler(h.log, log.HandlerOptions{MaxInFlight: slots, BodyTimeout: time.Minute, Logger: logger}))
	var slow []net.Conn
	for range slots {
		slow = append(slow, httplimittest.SlowPost(t, s.Server, "127.0.0.1", "/v1/entries", '{'))
	}
	for range slots {
		<-s.Reading
	}
	if code := submit(s.Server); code != http.StatusCreated {
		t.Fatalf("a submission while %d slow clients send their bodies: %d, want 201", slots, code)
	}
	for _, c := range slow {
		c.Close()
	}
	for range slots + 1 {
		<-s.Done
	}
	if got := strings.Count(logs.String(), "code=400"); got != slots {
		t.Errorf("%d debug lines with code=400 for the bodies cut short, want %d:\n%s", got, slots, logs)
	}

	// A body that does not come in time.
	s = httplimittest.NewWatchedServer(t, log.NewHandler(h.log, log.HandlerOptions{BodyTimeout: 100 * time.Millisecond, Logger: logger}))
	resp, body := httplimittest.ReadReply(t, httplimittest.SlowPost(t, s.Server, "127.0.0.1", "/v1/entries", '{'))
	if resp.StatusCode != http.StatusRequestTimeout {
		t.Errorf("a slow body: %d %s, want 408", resp.StatusCode, body)
	}
	checkError(t, "slow body", resp.StatusCode, resp.Header, body)

	// Two in flight per address.
	s = httplimittest.NewWatchedServer(t, log.NewHandler(h.log, log.HandlerOptions{MaxInFlightPerClient: 2, BodyTimeout: time.Minute, Logger: logger}))
	httplimittest.SlowPost(t, s.Server, "127.0.0.2", "/v1/entries", '{')
	httplimittest.SlowPost(t, s.Server, "127.0.0.2", "/v1/entries", '{')
	<-s.Reading
	<-s.Reading
	resp, body = httplimittest.ReadReply(t, httplimittest.SlowPost(t, s.Server, "127.0.0.2", "/v1/entries", '{'))
	if resp.StatusCode != http.StatusTooManyRequests || resp.Header.Get("Retry-After") == "" {
		t.Errorf("a third slow client from one address: %d %s, want 429 with Retry-After", resp.StatusCode, body)
	}
	checkError(t, "third slow client", resp.StatusCode, resp.Header, body)
	if code := submit(s.Server); code != http.StatusCreated {
		t.Errorf("a submission from another address: %d, want 201", code)
	}

	if strings.Contains(logs.String(), "level=ERROR") {
		t.Errorf("errors logged:\n%s", logs)
	}
	for _, want := range []string{"code=408", "code=429"} {
		if !strings.Contains(logs.String(), want) {
			t.Errorf("no debug line with %s:\n%s", want, logs)
		}
	}
}
