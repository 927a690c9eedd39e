package integration

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/transparency-dev/merkle/rfc6962"

	"github.com/candorlog/candor/api"
	"github.com/candorlog/candor/api/apitest"
)

// TestRecompressKill9 kills `candor-log recompress-bundles` with SIGKILL
// at moments spread over its run, and checks after each kill that the log
// is whole (fsck reads every entry back through the bundle files the log
// records and checks it against the tree) and its bundle directory holds
// no more than the files of two generations; then that the server starts
// on it, keeps only the files it uses, and serves the entries, and that a
// rewrite run to its end leaves the log whole.
func TestRecompressKill9(t *testing.T) {
	requireBinaries(t)
	requirePebble(t, "recompress-bundles rewrites the embedded storage's bundle files")
	const origin = "example.com/log"
	// More full bundles than a rewrite writes at once (64), and a partial
	// one, which stays in pebble.
	const size = 70*api.TileWidth + 10
	data := t.TempDir()
	srv := mustStartServer(t, "candor-log", data, "--origin", origin)
	signer := apitest.NewBuildSigner()
	parallelN(t, 32, size, func(i int) error {
		name := fmt.Sprintf("recompress/%d", i)
		digest := sha256.Sum256([]byte(name))
		code, _, body, err := srv.submit(context.Background(), signer.Submission(name, hex.EncodeToString(digest[:])))
		if err != nil || code != http.StatusCreated {
			return fmt.Errorf("submission %d: %d %s %v", i, code, body, err)
		}
		return nil
	})
	if t.Failed() {
		return
	}
	// A clean stop moves the full bundles not moved yet.
	srv.stop(t)
	bdir := filepath.Join(data, "db", "bundles")
	checkLog := func(when string) {
		t.Helper()
		out, errOut, err := runFsck(t, data)
		if err != nil || !strings.Contains(out, fmt.Sprintf("fsck: ok: %d entries", size)) {
			t.Fatalf("fsck %s: %v\n%s%s", when, err, out, errOut)
		}
		names := bundleFileNames(t, bdir)
		if len(names) != 2 && len(names) != 4 {
			t.Fatalf("%s, the bundle directory holds %v: want the files of one generation, or of two", when, names)
		}
	}
	checkLog("before any rewrite")

	// Two whole runs, timed, to spread the kills over.
	whole := time.Duration(1 << 62)
	for gen := 1; gen <= 2; gen++ {
		start := time.Now()
		p := startProcess(t, "candor-log recompress-bundles", "recompress-bundles", "--data", data)
		if ok, err := p.wait(2 * time.Minute); !ok || err != nil {
			t.Fatalf("recompress-bundles: %v (finished: %v)\n%s", err, ok, p.stderr)
		}
		whole = min(whole, time.Since(start))
		if out := p.stdout.String(); !strings.Contains(out, "recompress-bundles: ok: 70 bundles") {
			t.Fatalf("recompress-bundles printed %q", out)
		}
		checkLog("after a rewrite")
		if names, want := bundleFileNames(t, bdir), []string{fmt.Sprintf("data.%d", gen), fmt.Sprintf("index.%d", gen)}; !slices.Equal(names, want) {
			t.Fatalf("after rewrite %d, the bundle directory holds %v, want %v", gen, names, want)
		}
	}

	kills := 6
	if raceEnabled {
		kills = 3 // each check takes seconds
	}
	for k := range kills {
		delay := whole * time.Duration(k+1) / time.Duration(kills+1)
		p := startProcess(t, fmt.Sprintf("candor-log recompress-bundles (kill %d)", k), "recompress-bundles", "--data", data)
		time.Sleep(delay)
		p.stopping.Store(true)
		p.cmd.Process.Kill()
		p.wait(time.Minute)
		t.Logf("killed %s into a rewrite (a whole one took %s): the bundle directory holds %v", delay.Round(time.Millisecond), whole.Round(time.Millisecond), bundleFileNames(t, bdir))
		checkLog(fmt.Sprintf("after a kill %s into a rewrite", delay.Round(time.Millisecond)))
	}

	// The server reads the recorded generation and removes the other's
	// files, if a kill left them.
	srv = mustStartServer(t, "candor-log (after the kills)", data, "--origin", origin)
	if _, c := srv.mustCheckpoint(t, origin); c.Size != size {
		t.Fatalf("checkpoint size %d after the kills, want %d", c.Size, size)
	}
	for _, i := range []uint64{0, 5000, size - 1} {
		var got api.EntryResponse
		if err := srv.getJSON(context.Background(), fmt.Sprintf("/v1/entries/%d", i), &got); err != nil || got.Index != i || !bytes.Equal(got.LeafHash, rfc6962.DefaultHasher.HashLeaf(got.Entry)) {
			t.Fatalf("entry %d after the kills: %+v, %v", i, got, err)
		}
	}
	srv.stop(t)
	if names := bundleFileNames(t, bdir); len(names) != 2 {
		t.Fatalf("after a start, the bundle directory holds %v, want the files of one generation", names)
	}
	rewrite := startProcess(t, "candor-log recompress-bundles (last)", "recompress-bundles", "--data", data)
	if ok, err := rewrite.wait(2 * time.Minute); !ok || err != nil {
		t.Fatalf("recompress-bundles after the kills: %v (finished: %v)\n%s", err, ok, rewrite.stderr)
	}
	checkLog("after the last rewrite")
}

// bundleFileNames returns the names of the files in the bundle directory
// dir, sorted.
func bundleFileNames(t *testing.T, dir string) []string {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
	}
	return names
}
