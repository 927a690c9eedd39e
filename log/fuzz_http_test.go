package log_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/candorlog/candor/api"
	"github.com/candorlog/candor/api/apitest"
	"github.com/candorlog/candor/log"
	"github.com/candorlog/candor/storage/pebble"
)

// FuzzHandler feeds arbitrary requests to the HTTP API of one log (made
// once per fuzzing process, on pebble) and checks that none gets a 5xx or
// a panic, that errors are JSON, and that the published checkpoint only
// changes with a 201.
func FuzzHandler(f *testing.F) {
	const origin = "example.com/candor/fuzz"
	// A fixed key, so that runs are reproducible.
	seed := sha256.Sum256([]byte(origin))
	signer, verifier, _ := apitest.NewNoteKey(origin, bytes.NewReader(seed[:]))
	quiet := slog.New(slog.DiscardHandler)
	store, err := pebble.Open(f.TempDir(), pebble.Options{Logger: quiet, CacheBytes: 8 << 20})
	if err != nil {
		f.Fatal(err)
	}
	f.Cleanup(func() { store.Close() })
	l, err := log.New(context.Background(), log.Config{Storage: store, Signer: signer, Verifier: verifier, Logger: quiet})
	if err != nil {
		f.Fatal(err)
	}
	f.Cleanup(func() { l.Close() })
	// Enough entries for a full tile, a partial one and a level 1 tile.
	for i := range 300 {
		if _, err := l.Add(context.Background(), fmt.Appendf(nil, "fuzz entry %d", i)); err != nil {
			f.Fatal(err)
		}
	}
	h := log.NewHandler(l, log.HandlerOptions{Logger: quiet, MaxBodyBytes: 1 << 16})

	bs := apitest.NewBuildSignerFromSeed([]byte("FuzzHandler"))
	digest := sha256.Sum256([]byte("fuzz"))
	valid := bs.Submission("fuzz", hex.EncodeToString(digest[:]))
	fresh := bs.Submission("fresh", hex.EncodeToString(digest[:]))
	if _, err := l.Add(context.Background(), valid); err != nil {
		f.Fatal(err)
	}
	leaf := sha256.Sum256(append([]byte{0}, valid...))
	for _, s := range []struct {
		method, target, encoding string
		body                     []byte
	}{
		{"POST", "/v1/entries", "", valid},
		{"POST", "/v1/entries", "", fresh},
		{"POST", "/v1/entries", "", []byte(`{"kind":"build","v":1,"envelope":{}}`)},
		{"POST", "/v1/entries", "gzip", valid},
		{"POST", "/v1/entries", "identity", []byte(`{"kind":"commit"}`)},
		{"GET", "/checkpoint", "", nil},
		{"GET", "/tile/0/000", "", nil},
		{"GET", "/tile/0/001.p/45", "", nil},
		{"GET", "/tile/1/000.p/1", "", nil},
		{"GET", "/tile/entries/001.p/45", "", nil},
		{"GET", "/tile/entries/x001/x234/067.p/5", "", nil},
		{"GET", "/v1/entries/299", "", nil},
		{"GET", "/v1/proof/inclusion?index=12&size=256", "", nil},
		{"GET", "/v1/proof/inclusion?leafHash=" + hex.EncodeToString(leaf[:]), "", nil},
		{"GET", "/v1/proof/inclusion?leafHash=" + base64.URLEncoding.EncodeToString(leaf[:]) + "&size=301", "", nil},
		{"GET", "/v1/proof/consistency?old=17&new=300", "", nil},
		{"GET", "/v1/proof/consistency?old=0", "", nil},
		{"HEAD", "/readyz", "", nil},
		{"DELETE", "/healthz", "", nil},
		{"GET", "/v1/search?key=" + bs.KeyFingerprint() + "&limit=2", "", nil},
		{"GET", "/v1/search?digest=sha256:" + hex.EncodeToString(digest[:]) + "&key=" + bs.KeyFingerprint() + "&cursor=AAAAAAAAAAE", "", nil},
		{"GET", "/v1/search?commit=" + strings.Repeat("ab", 20) + "&repository=r&repository=s", "", nil},
	} {
		f.Add(s.method, s.target, s.encoding, s.body)
	}

	f.Fuzz(func(t *testing.T, method, target, encoding string, body []byte) {
		req := httptest.NewRequest("GET", "/", bytes.NewReader(body))
		if method != "" {
			req.Method = method
		}
		path, query, _ := strings.Cut(target, "?")
		req.URL.Path = "/" + strings.TrimPrefix(path, "/")
		req.URL.RawQuery = query
		req.RequestURI = req.URL.RequestURI()
		if encoding != "" {
			req.Header.Set("Content-Encoding", encoding)
		}
		what := fmt.Sprintf("%q %q (Content-Encoding %q, %d bytes)", req.Method, target, encoding, len(body))

		before, oldSize := l.Checkpoint()
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		after, newSize := l.Checkpoint()

		if rec.Code >= 500 {
			t.Fatalf("%s: status %d: %s", what, rec.Code, rec.Body)
		}
		if rec.Code == http.StatusCreated {
			if newSize <= oldSize {
				t.Fatalf("%s: 201 but the tree is still of size %d", what, newSize)
			}
			var r api.AddEntryResponse
			if err := json.Unmarshal(rec.Body.Bytes(), &r); err != nil {
				t.Fatalf("%s: 201 with %q: %v", what, rec.Body, err)
			}
			p, err := api.ParseProofBundle([]byte(r.Proof))
			if err != nil {
				t.Fatalf("%s: %v", what, err)
			}
			if _, err := api.VerifyProofBundle(p, r.LeafHash, origin, verifier); err != nil {
				t.Fatalf("%s: %v", what, err)
			}
		} else if !bytes.Equal(before, after) {
			t.Fatalf("%s: status %d changed the checkpoint from size %d to %d", what, rec.Code, oldSize, newSize)
		}
		if _, _, err := api.OpenCheckpoint(after, origin, verifier); err != nil {
			t.Fatalf("%s: published checkpoint: %v", what, err)
		}
		if rec.Header().Get("Content-Type") == "application/json" {
			if !json.Valid(rec.Body.Bytes()) {
				t.Fatalf("%s: invalid JSON: %q", what, rec.Body)
			}
			if rec.Code >= 400 {
				var e api.ErrorResponse
				if json.Unmarshal(rec.Body.Bytes(), &e); e.Error == "" {
					t.Fatalf("%s: status %d without a reason: %q", what, rec.Code, rec.Body)
				}
			}
		}
	})
}
