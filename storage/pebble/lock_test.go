package pebble_test

import (
	"bufio"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/candorlog/candor/storage/pebble"
)

// lockHelperEnv names the directory the helper process opens.
const lockHelperEnv = "CANDOR_TEST_LOCK_HELPER_DIR"

// TestLockHelper is not a test: run by TestOpenLockedByAnotherProcess as
// another process, it opens the database, says so, and holds it until its
// stdin closes.
func TestLockHelper(t *testing.T) {
	dir := os.Getenv(lockHelperEnv)
	if dir == "" {
		t.Skip("run by TestOpenLockedByAnotherProcess")
	}
	s, err := pebble.Open(dir, pebble.Options{LeafFilterBytes: -1, Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	os.Stdout.WriteString("opened\n")
	io.Copy(io.Discard, os.Stdin)
	s.Close()
}

// TestOpenLockedByAnotherProcess: a database that another process has open
// is refused with ErrLocked, and the message names the directory and says
// another process uses it (not pebble's "resource temporarily
// unavailable"); the log's storage and the witness's state alike.
func TestOpenLockedByAnotherProcess(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "db")
	cmd := exec.Command(os.Args[0], "-test.run=^TestLockHelper$", "-test.v")
	cmd.Env = append(os.Environ(), lockHelperEnv+"="+dir)
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() {
		stdin.Close()
		if err := cmd.Wait(); err != nil {
			t.Errorf("the helper process: %v", err)
		}
	}()
	sc := bufio.NewScanner(stdout)
	for sc.Scan() && sc.Text() != "opened" {
	}
	if sc.Text() != "opened" {
		t.Fatalf("the helper process did not open the database: %v", sc.Err())
	}
	go io.Copy(io.Discard, stdout)

	s, err := pebble.Open(dir, pebble.Options{LeafFilterBytes: -1, Logger: quiet})
	if err == nil {
		s.Close()
		t.Fatal("Open succeeded while another process has the database open")
	}
	if !errors.Is(err, pebble.ErrLocked) || !strings.Contains(err.Error(), "another process is using "+dir) {
		t.Errorf("Open: %v, want ErrLocked saying another process is using %s", err, dir)
	}
	w, err := pebble.OpenWitnessState(dir, pebble.Options{Logger: quiet})
	if err == nil {
		w.Close()
		t.Fatal("OpenWitnessState succeeded while another process has the database open")
	}
	if !errors.Is(err, pebble.ErrLocked) || !strings.Contains(err.Error(), "another process is using "+dir) {
		t.Errorf("OpenWitnessState: %v, want ErrLocked saying another process is using %s", err, dir)
	}
}
