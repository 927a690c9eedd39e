package client_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"golang.org/x/mod/sumdb/tlog"

	"github.com/candorlog/candor/api"
	"github.com/candorlog/candor/api/client"
	"github.com/candorlog/candor/internal/bundlezstd"
)

// fakeLog serves canned replies by path and records the paths asked for.
type fakeLog struct {
	mu      sync.Mutex
	paths   []string
	replies map[string]func(w http.ResponseWriter, r *http.Request)
}

func (f *fakeLog) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	f.mu.Lock()
	f.paths = append(f.paths, r.Method+" "+r.URL.Path)
	reply, ok := f.replies[r.URL.Path]
	f.mu.Unlock()
	if !ok {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusNotFound)
		io.WriteString(w, `{"error":"out of range: `+r.URL.Path+`"}`+"\n")
		return
	}
	reply(w, r)
}

func serve(body []byte) func(w http.ResponseWriter, r *http.Request) {
	return func(w http.ResponseWriter, r *http.Request) { w.Write(body) }
}

func newFake(t *testing.T, prefix string, replies map[string]func(w http.ResponseWriter, r *http.Request)) (*fakeLog, *client.Client) {
	f := &fakeLog{replies: map[string]func(w http.ResponseWriter, r *http.Request){}}
	for p, r := range replies {
		f.replies[prefix+p] = r
	}
	srv := httptest.NewServer(f)
	t.Cleanup(srv.Close)
	return f, client.New(srv.URL+prefix+"/", srv.Client())
}

func bundle(t *testing.T, entries ...string) []byte {
	var b []byte
	for _, e := range entries {
		var err error
		if b, err = api.AppendBundleEntry(b, []byte(e)); err != nil {
			t.Fatal(err)
		}
	}
	return b
}

func TestCheckpointAndTile(t *testing.T) {
	ctx := context.Background()
	hashes := bytes.Repeat([]byte{7}, 3*api.HashSize)
	_, c := newFake(t, "/log", map[string]func(http.ResponseWriter, *http.Request){
		"/checkpoint":           serve([]byte("origin\n3\nroot\n")),
		"/tile/0/000.p/3":       serve(hashes),
		"/tile/0/000.p/2":       serve(hashes), // too long
		"/tile/entries/000.p/2": serve(bundle(t, "a", "b")),
		"/tile/entries/000.p/3": serve(bundle(t, "a", "b")), // too short
		"/tile/entries/001.p/1": serve([]byte{0, 5, 'a'}),   // truncated
	})
	if cp, err := c.Checkpoint(ctx); err != nil || string(cp) != "origin\n3\nroot\n" {
		t.Errorf("Checkpoint() = %q, %v", cp, err)
	}
	if got, err := c.Tile(ctx, api.Tile{Level: 0, Width: 3}); err != nil || !bytes.Equal(got, hashes) {
		t.Errorf("Tile(0/000.p/3) = %x, %v", got, err)
	}
	if got, err := c.Tile(ctx, api.Tile{Level: api.EntriesLevel, Width: 2}); err != nil || !bytes.Equal(got, bundle(t, "a", "b")) {
		t.Errorf("Tile(entries/000.p/2) = %x, %v", got, err)
	}
	for _, bad := range []api.Tile{
		{Level: 0, Width: 2},
		{Level: api.EntriesLevel, Width: 3},
		{Level: api.EntriesLevel, Index: 1, Width: 1},
		{Level: -2, Width: 1},
		{Level: 0, Width: 0},
		{Level: 0, Width: 257},
	} {
		if got, err := c.Tile(ctx, bad); err == nil {
			t.Errorf("Tile(%+v) = %x, want an error", bad, got)
		}
	}

	_, err := c.Tile(ctx, api.Tile{Level: 1, Index: 2, Width: api.TileWidth})
	var se *client.StatusError
	if !errors.As(err, &se) || se.StatusCode != http.StatusNotFound || se.Message != "out of range: /log/tile/1/002" {
		t.Fatalf("Tile(1/002) error = %#v", err)
	}
	if !strings.Contains(err.Error(), "out of range: /log/tile/1/002") {
		t.Errorf("error %q does not quote the server's reason", err)
	}
}

func TestAddEntry(t *testing.T) {
	ctx := context.Background()
	reply := api.AddEntryResponse{Index: 5, LeafHash: bytes.Repeat([]byte{1}, 32), TreeSize: 6, Proof: "proof"}
	var posted []byte
	answer := func(code int) func(http.ResponseWriter, *http.Request) {
		return func(w http.ResponseWriter, r *http.Request) {
			if r.Method != http.MethodPost {
				w.WriteHeader(http.StatusMethodNotAllowed)
				return
			}
			posted, _ = io.ReadAll(r.Body)
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(code)
			json.NewEncoder(w).Encode(reply)
		}
	}
	for _, code := range []int{http.StatusCreated, http.StatusOK} {
		_, c := newFake(t, "", map[string]func(http.ResponseWriter, *http.Request){"/v1/entries": answer(code)})
		r, got, err := c.AddEntry(ctx, []byte(`{"kind":"build"}`))
		if err != nil || got != code || r.Index != 5 || r.TreeSize != 6 || r.Proof != "proof" || !bytes.Equal(r.LeafHash, reply.LeafHash) {
			t.Errorf("AddEntry = %+v, %d, %v", r, got, err)
		}
		if string(posted) != `{"kind":"build"}` {
			t.Errorf("posted %q", posted)
		}
	}

	_, c := newFake(t, "", map[string]func(http.ResponseWriter, *http.Request){
		"/v1/entries": func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "application/json")
			w.Header().Set("Retry-After", "1")
			w.WriteHeader(http.StatusTooManyRequests)
			io.WriteString(w, `{"error":"too many submissions in flight"}`)
		},
	})
	_, code, err := c.AddEntry(ctx, []byte("{}"))
	var se *client.StatusError
	if code != http.StatusTooManyRequests || !errors.As(err, &se) || se.Message != "too many submissions in flight" {
		t.Errorf("AddEntry = %d, %v", code, err)
	}

	_, c = newFake(t, "", map[string]func(http.ResponseWriter, *http.Request){
		"/v1/entries": func(w http.ResponseWriter, r *http.Request) {
			http.Error(w, "bad gateway", http.StatusBadGateway)
		},
	})
	_, code, err = c.AddEntry(ctx, []byte("{}"))
	if code != http.StatusBadGateway || !errors.As(err, &se) || se.Message != "bad gateway" {
		t.Errorf("AddEntry = %d, %v", code, err)
	}
}

func TestTileReader(t *testing.T) {
	full := bytes.Repeat([]byte{1}, api.TileWidth*api.HashSize)
	f, c := newFake(t, "", map[string]func(http.ResponseWriter, *http.Request){
		"/tile/0/x001/x234/067":      serve(full),
		"/tile/2/000.p/5":            serve(full[:5*api.HashSize]),
		"/tile/entries/x001/000.p/2": serve(bundle(t, "x", "y")),
	})
	tr := &client.TileReader{Client: c}
	if tr.Height() != 8 {
		t.Fatalf("Height() = %d", tr.Height())
	}
	tiles := []tlog.Tile{
		{H: 8, L: 0, N: 1234067, W: 256},
		{H: 8, L: 2, N: 0, W: 5},
		{H: 8, L: -1, N: 1000, W: 2},
	}
	data, err := tr.ReadTiles(tiles)
	if err != nil {
		t.Fatal(err)
	}
	if len(data) != 3 || !bytes.Equal(data[0], full) || len(data[1]) != 5*api.HashSize || !bytes.Equal(data[2], bundle(t, "x", "y")) {
		t.Fatalf("ReadTiles = %x", data)
	}
	want := []string{"GET /tile/0/x001/x234/067", "GET /tile/2/000.p/5", "GET /tile/entries/x001/000.p/2"}
	f.mu.Lock()
	paths := f.paths
	f.mu.Unlock()
	if strings.Join(paths, ",") != strings.Join(want, ",") {
		t.Errorf("fetched %q, want %q", paths, want)
	}
	tr.SaveTiles(tiles, data)

	for _, bad := range []tlog.Tile{
		{H: 7, L: 0, N: 0, W: 1},
		{H: 8, L: -2, N: 0, W: 1},
		{H: 8, L: 0, N: -1, W: 1},
		{H: 8, L: 0, N: 0, W: 0},
		{H: 8, L: 0, N: 0, W: 257},
		{H: 8, L: 0, N: 3, W: 256}, // not served
	} {
		if _, err := tr.ReadTiles([]tlog.Tile{tiles[0], bad}); err == nil {
			t.Errorf("ReadTiles(%+v) succeeded", bad)
		}
	}
}

// TestTileZstd checks that the client asks for full entry bundles in
// zstd, decodes them, and refuses a reply in a coding it did not ask for
// or a frame that would decode to more than a bundle.
func TestTileZstd(t *testing.T) {
	ctx := context.Background()
	entries := make([]string, api.TileWidth)
	for i := range entries {
		entries[i] = strings.Repeat("entry ", i%9+1)
	}
	full := bundle(t, entries...)
	encoded := func(body []byte, coding string) func(http.ResponseWriter, *http.Request) {
		return func(w http.ResponseWriter, r *http.Request) {
			if r.Header.Get("Accept-Encoding") != bundlezstd.Coding {
				t.Errorf("%s: Accept-Encoding %q, want zstd", r.URL.Path, r.Header.Get("Accept-Encoding"))
			}
			w.Header().Set("Content-Encoding", coding)
			w.Write(body)
		}
	}
	_, c := newFake(t, "", map[string]func(http.ResponseWriter, *http.Request){
		"/tile/entries/000": encoded(bundlezstd.Append(nil, full), "zstd"),
		"/tile/entries/001": serve(full), // a log that serves it uncompressed
		"/tile/entries/002": encoded(full, "br"),
		"/tile/entries/003": encoded(bundlezstd.Append(nil, make([]byte, bundlezstd.MaxSize+1)), "zstd"),
		"/tile/entries/004": encoded([]byte("not zstd"), "zstd"),
	})
	for i, want := range []string{"", "", "not asked for", "more than a bundle", "couldn't decode"} {
		got, err := c.Tile(ctx, api.Tile{Level: api.EntriesLevel, Index: uint64(i), Width: api.TileWidth})
		switch {
		case want == "" && (err != nil || !bytes.Equal(got, full)):
			t.Errorf("bundle %d: %d bytes, %v; want the bundle", i, len(got), err)
		case want != "" && (err == nil || !strings.Contains(err.Error(), want)):
			t.Errorf("bundle %d: %v, want an error saying %q", i, err, want)
		}
	}
}
