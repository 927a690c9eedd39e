package integration

import (
	"context"
	"os"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/candorlog/candor/storage/trillian"
	"github.com/candorlog/candor/storage/trillian/trilliantest"
)

// The tests of the log run on its embedded storage, or, with
// CANDOR_TEST_STORAGE=trillian, with every candor-log server a front end
// on a Trillian tree (Trillian's log server and signer in the test's
// process, on a private MariaDB): one tree per data directory, so that a
// server restarted on its directory finds its log again. The suite of the
// log's guarantees (submission, dedup, proofs, tiles, restarts, bad input,
// kill -9 under load, a full disk) runs unchanged on both; the tests of
// what only the embedded storage does call requirePebble.
var testStorage = os.Getenv("CANDOR_TEST_STORAGE")

// requirePebble skips, under CANDOR_TEST_STORAGE=trillian, a test of what
// only the embedded storage does, saying why.
func requirePebble(t *testing.T, why string) {
	t.Helper()
	if testStorage == "trillian" {
		t.Skip("not run with CANDOR_TEST_STORAGE=trillian: " + why)
	}
}

var (
	trillianMu    sync.Mutex
	trillianEnvs  = map[*testing.T]*trilliantest.Env{}
	trillianTrees = map[string][]string{} // data directory -> candor-log's flags
)

// storageArgs returns the flags that put a server on data on the tested
// storage.
func storageArgs(t *testing.T, data string) []string {
	t.Helper()
	if testStorage != "trillian" {
		return nil
	}
	trillianMu.Lock()
	defer trillianMu.Unlock()
	if args, ok := trillianTrees[data]; ok {
		return args
	}
	env, ok := trillianEnvs[t]
	if !ok {
		env = trilliantest.Start(t, trilliantest.Options{SequencerInterval: 50 * time.Millisecond})
		trillianEnvs[t] = env
		t.Cleanup(func() {
			trillianMu.Lock()
			delete(trillianEnvs, t)
			trillianMu.Unlock()
		})
	}
	conn, err := trillian.Dial(trillian.Options{Address: env.Addr, Plaintext: true})
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	tree, err := trillian.CreateTree(context.Background(), conn, "integration", data)
	if err != nil {
		t.Fatal(err)
	}
	args := []string{"--storage", "trillian", "--trillian", env.Addr, "--trillian-tree", strconv.FormatInt(tree.TreeId, 10), "--trillian-db", env.DSN,
		"--trillian-plaintext", "--trillian-poll", "100ms"}
	trillianTrees[data] = args
	t.Logf("the server on %s runs on Trillian tree %d", data, tree.TreeId)
	t.Cleanup(func() {
		trillianMu.Lock()
		delete(trillianTrees, data)
		trillianMu.Unlock()
	})
	return args
}
