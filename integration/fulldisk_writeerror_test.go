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
	"strings"
	"testing"
	"time"

	"github.com/candorlog/candor/api/apitest"
	"github.com/candorlog/candor/internal/tmpfs"
)

// TestFullDiskWriteErrors runs candor-log without a reserve
// (--min-free-bytes 0) on a real 64 MiB tmpfs filled to the last byte, so
// that its writes reach pebble and fail: the submissions that meet the
// full disk must fail (503, or 500 for another error) and the process
// must go on serving reads; once the file is deleted it takes entries
// again by itself, and every acknowledged entry is there, also after a
// restart and for fsck.
func TestFullDiskWriteErrors(t *testing.T) {
	requireBinaries(t)
	requirePebble(t, "a front end on Trillian whose mirror's writes fail answers /checkpoint with 503 (it cannot tell it is current), where the embedded log serves its last checkpoint")
	ctx := context.Background()
	dir := tmpfs.Mount(t, fullDiskSize)
	data := filepath.Join(dir, "log")
	args := []string{"--origin", fullDiskOrigin, "--min-free-bytes", "0", "--cache-mib", "8"}
	srv := mustStartServer(t, "candor-log", data, args...)

	builder := apitest.NewBuildSignerFromSeed([]byte("TestFullDiskWriteErrors"))
	name := strings.Repeat("n", 30000)
	sub := func(i int) []byte {
		d := sha256.Sum256([]byte(fmt.Sprint("artifact ", i)))
		return builder.Submission(fmt.Sprint(name, "/", i), hex.EncodeToString(d[:]))
	}
	acked := make(map[uint64][]byte)
	var refusals []string // the first replies that refused an entry
	next := 0
	try := func() int {
		t.Helper()
		code, resp, body, err := srv.submit(ctx, sub(next))
		if err != nil {
			t.Fatalf("entry %d: %v", next, err)
		}
		switch code {
		case http.StatusCreated:
			acked[resp.Index] = sub(next)
		case http.StatusServiceUnavailable, http.StatusInternalServerError:
			if len(refusals) < 2 {
				refusals = append(refusals, fmt.Sprintf("%d %s", code, bytes.TrimSpace(body)))
			}
		default:
			t.Fatalf("entry %d: %d %s", next, code, body)
		}
		next++
		return code
	}
	for range 10 {
		if code := try(); code != http.StatusCreated {
			t.Fatalf("entry %d on an empty disk: %d", next-1, code)
		}
	}
	fill := filepath.Join(dir, "fill")
	tmpfs.FillTo(t, fill, 0)
	failed := 0
	for range 300 {
		if try() != http.StatusCreated {
			failed++
			if failed == 5 {
				break
			}
		}
	}
	if failed == 0 {
		t.Fatalf("%d entries acknowledged on a full disk, none refused", next-10)
	}
	t.Logf("on the full disk: %d entries acknowledged, %d refused: %q", next-10-failed, failed, refusals)
	if srv.done() {
		t.Fatalf("candor-log exited on a full disk; stderr:\n%s", srv.stderr)
	}
	checkEntries(t, srv, acked)

	if err := os.Remove(fill); err != nil {
		t.Fatal(err)
	}
	for deadline := time.Now().Add(spaceTimeout); try() != http.StatusCreated; time.Sleep(100 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("no entry accepted %s after space was freed", spaceTimeout)
		}
	}
	for range 10 {
		if code := try(); code != http.StatusCreated {
			t.Fatalf("entry %d after space was freed: %d", next-1, code)
		}
	}
	checkEntries(t, srv, acked)
	srv.stop(t)
	srv = mustStartServer(t, "candor-log", data, args...)
	checkEntries(t, srv, acked)
	srv.stop(t)
	if out, stderr, err := runFsck(t, data); err != nil {
		t.Fatalf("fsck: %v\n%s\n%s", err, out, stderr)
	}
}
