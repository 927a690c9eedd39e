package cli

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"
)

func TestNewLogger(t *testing.T) {
	var buf bytes.Buffer
	l := NewLogger(&buf, "warn", "json")
	l.Info("hidden")
	l.Warn("shown", "k", "v")
	if out := buf.String(); strings.Contains(out, "hidden") || !strings.Contains(out, `"msg":"shown"`) {
		t.Fatalf("output %q", out)
	}
}

func TestServeShutsDown(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "ok") })
	go func() { done <- Serve(ctx, ln, h, slog.New(slog.DiscardHandler)) }()
	resp, err := http.Get("http://" + ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if string(b) != "ok" {
		t.Fatalf("body %q", b)
	}
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("Serve: %v", err)
		}
	case <-time.After(15 * time.Second):
		t.Fatal("Serve did not return after the context ended")
	}
	if _, err := http.Get("http://" + ln.Addr().String()); err == nil {
		t.Fatal("still serving after shutdown")
	}
}

func TestServerCheck(t *testing.T) {
	ok := Server{Data: "d", Listen: "localhost:0", KeyField: "origin", KeyName: "example.com/log", LogLevel: "warn", LogFormat: "json"}
	if errs := ok.Check(); len(errs) != 0 {
		t.Fatalf("Check(%+v) = %v, want no errors", ok, errs)
	}
	for _, tc := range []struct {
		edit func(*Server)
		want string
	}{
		{func(s *Server) { s.Data = "" }, "data:"},
		{func(s *Server) { s.Listen = "" }, "listen:"},
		{func(s *Server) { s.KeyName = "a b" }, `origin "a b"`},
		{func(s *Server) { s.KeyName = "a+b" }, `origin "a+b"`},
		{func(s *Server) { s.KeyName = "a\nb" }, `origin "a\nb"`},
		{func(s *Server) { s.KeyName = "https://log.example.com" }, `must be schemeless`},
		{func(s *Server) { s.KeyName = "http://log.example.com/candor" }, `drop "http://", as in "log.example.com/candor"`},
		{func(s *Server) { s.LogLevel = "loud" }, `logLevel "loud"`},
		{func(s *Server) { s.LogFormat = "xml" }, `logFormat "xml"`},
	} {
		s := ok
		tc.edit(&s)
		errs := s.Check()
		if len(errs) != 1 || !strings.Contains(errs[0].Error(), tc.want) {
			t.Errorf("Check(%+v) = %v, want one error about %s", s, errs, tc.want)
		}
	}
	if errs := (Server{KeyField: "name"}).Check(); len(errs) != 4 {
		t.Errorf("Check of an empty config = %v, want 4 errors (data, listen, logLevel, logFormat)", errs)
	}
}
