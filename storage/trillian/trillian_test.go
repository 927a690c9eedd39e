package trillian_test

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	tpb "github.com/google/trillian"
	"github.com/transparency-dev/merkle/compact"
	"github.com/transparency-dev/merkle/rfc6962"

	"github.com/candorlog/candor/storage/trillian"
	"github.com/candorlog/candor/storage/trillian/trilliantest"
)

// TestCreateTree creates a tree on a real Trillian log server and signer
// on MariaDB, queues entries and checks that the tree Trillian integrates
// is the RFC 6962 tree of those entries, as the log computes it.
func TestCreateTree(t *testing.T) {
	env := trilliantest.Start(t, trilliantest.Options{SequencerInterval: 20 * time.Millisecond})
	conn, err := trillian.Dial(trillian.Options{Address: env.Addr, Plaintext: true})
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	tree, err := trillian.CreateTree(ctx, conn, "candor-test", "a test log")
	if err != nil {
		t.Fatal(err)
	}
	if tree.TreeId == 0 || tree.TreeType != tpb.TreeType_LOG || tree.TreeState != tpb.TreeState_ACTIVE {
		t.Fatalf("created tree %v", tree)
	}
	lc := tpb.NewTrillianLogClient(conn)
	root, err := trillian.LatestRoot(ctx, lc, tree.TreeId)
	if err != nil {
		t.Fatal(err)
	}
	if root.TreeSize != 0 {
		t.Fatalf("a new tree has size %d", root.TreeSize)
	}
	// Entries queued, and integrated by the signer.
	const n = 300
	rf := compact.RangeFactory{Hash: rfc6962.DefaultHasher.HashChildren}
	want := rf.NewEmptyRange(0)
	for i := range n {
		data := fmt.Appendf(nil, "entry %d", i)
		leafHash := rfc6962.DefaultHasher.HashLeaf(data)
		if _, err := lc.QueueLeaf(ctx, &tpb.QueueLeafRequest{LogId: tree.TreeId, Leaf: &tpb.LogLeaf{
			LeafValue: data, LeafIdentityHash: leafHash,
		}}); err != nil {
			t.Fatal(err)
		}
	}
	for root.TreeSize < n {
		select {
		case <-ctx.Done():
			t.Fatalf("Trillian integrated %d of %d entries", root.TreeSize, n)
		case <-time.After(20 * time.Millisecond):
		}
		if root, err = trillian.LatestRoot(ctx, lc, tree.TreeId); err != nil {
			t.Fatal(err)
		}
	}
	// Trillian orders the entries as it likes; the root is that of its
	// order.
	resp, err := lc.GetLeavesByRange(ctx, &tpb.GetLeavesByRangeRequest{LogId: tree.TreeId, StartIndex: 0, Count: n})
	if err != nil {
		t.Fatal(err)
	}
	if len(resp.Leaves) != n {
		t.Fatalf("got %d leaves, want %d", len(resp.Leaves), n)
	}
	seen := map[string]bool{}
	for i, l := range resp.Leaves {
		if l.LeafIndex != int64(i) || !strings.HasPrefix(string(l.LeafValue), "entry ") || seen[string(l.LeafValue)] {
			t.Fatalf("leaf %d: index %d, value %q", i, l.LeafIndex, l.LeafValue)
		}
		seen[string(l.LeafValue)] = true
		if err := want.Append(rfc6962.DefaultHasher.HashLeaf(l.LeafValue), nil); err != nil {
			t.Fatal(err)
		}
	}
	got, err := want.GetRootHash(nil)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, root.RootHash) {
		t.Errorf("Trillian's root of %d entries is %x, the RFC 6962 root of its leaves %x", n, root.RootHash, got)
	}
}

func TestDialOptions(t *testing.T) {
	ca := filepath.Join(t.TempDir(), "ca.pem")
	if err := os.WriteFile(ca, []byte("not a certificate"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		o    trillian.Options
		want string
	}{
		{trillian.Options{}, "no Trillian log server address"},
		{trillian.Options{Address: "127.0.0.1:1", Plaintext: true, CAFile: ca}, "plaintext"},
		{trillian.Options{Address: "127.0.0.1:1", CAFile: filepath.Join(t.TempDir(), "missing.pem")}, "missing.pem"},
		{trillian.Options{Address: "127.0.0.1:1", CAFile: ca}, "no PEM certificate"},
	} {
		conn, err := trillian.Dial(tc.o)
		if err == nil {
			conn.Close()
			t.Errorf("Dial(%+v) succeeded", tc.o)
			continue
		}
		if !strings.Contains(err.Error(), tc.want) {
			t.Errorf("Dial(%+v): %v, want it to say %q", tc.o, err, tc.want)
		}
	}
}
