package integration

import (
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"testing"
	"time"
)

var (
	// candorLog is the path of the candor-log binary that TestMain built,
	// or "" when the tests are skipped.
	candorLog string
	// binaryRace says candorLog was built with -race, and so is several
	// times slower.
	binaryRace bool
	// binDir holds the binaries built for the tests, removed at the end.
	binDir string

	builtMu sync.Mutex
	built   = map[string]string{} // package -> binary, built once
)

func TestMain(m *testing.M) {
	flag.Parse()
	if testing.Short() {
		os.Exit(m.Run()) // every test skips itself
	}
	dir, err := os.MkdirTemp("", "candor-integration-")
	if err != nil {
		fmt.Fprintln(os.Stderr, "integration: couldn't create a temp dir:", err)
		os.Exit(1)
	}
	code := func() int {
		defer os.RemoveAll(dir)
		binDir = dir
		bin, err := build(dir, "github.com/candorlog/candor/cmd/candor-log")
		if err != nil {
			fmt.Fprintln(os.Stderr, "integration:", err)
			return 1
		}
		candorLog = bin
		return m.Run()
	}()
	os.Exit(code)
}

// buildOnce returns the binary of pkg, built in binDir by the first test
// that asks for it.
func buildOnce(pkg string) (string, error) {
	builtMu.Lock()
	defer builtMu.Unlock()
	if bin, ok := built[pkg]; ok {
		return bin, nil
	}
	bin, err := build(binDir, pkg)
	if err != nil {
		return "", err
	}
	built[pkg] = bin
	return bin, nil
}

// build compiles pkg into dir with `go build`, with -race when the tests
// themselves run with -race (CANDOR_BINARY_RACE=0 or 1 overrides).
func build(dir, pkg string) (string, error) {
	race := raceEnabled
	switch os.Getenv("CANDOR_BINARY_RACE") {
	case "0":
		race = false
	case "1":
		race = true
	}
	binaryRace = race
	out := filepath.Join(dir, filepath.Base(pkg))
	args := []string{"build", "-o", out}
	if race {
		args = append(args, "-race")
	}
	args = append(args, pkg)
	goBin, err := exec.LookPath("go")
	if err != nil {
		goBin = filepath.Join(os.Getenv("GOROOT"), "bin", "go")
	}
	start := time.Now()
	cmd := exec.Command(goBin, args...)
	if b, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("couldn't build %s: %v\n%s", pkg, err, b)
	}
	fmt.Fprintf(os.Stderr, "integration: built %s (race=%v) in %s\n", pkg, race, time.Since(start).Round(time.Millisecond))
	return out, nil
}

// requireBinaries skips the test under -short.
func requireBinaries(t *testing.T) {
	t.Helper()
	if testing.Short() {
		t.Skip("integration: skipped under -short: this test builds candor-log and runs it as a separate process")
	}
	if candorLog == "" {
		t.Fatal("integration: candor-log was not built")
	}
}
