package integration

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// What a newcomer meets first in the repository: the Makefile, .gitignore
// and the README.

// repoRoot is the repository's top directory.
const repoRoot = ".."

// TestMakeHelpNamesEveryCommand: `make help` says that build builds every
// command in cmd/.
func TestMakeHelpNamesEveryCommand(t *testing.T) {
	if testing.Short() {
		t.Skip("integration test")
	}
	if _, err := exec.LookPath("make"); err != nil {
		t.Skip("make is not on PATH")
	}
	cmd := exec.Command("make", "-s", "help")
	cmd.Dir = repoRoot
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("make help: %v\n%s", err, out)
	}
	var build string
	for _, line := range strings.Split(string(out), "\n") {
		if strings.HasPrefix(strings.TrimSpace(line), "build ") {
			build = line
		}
	}
	dirs, err := os.ReadDir(filepath.Join(repoRoot, "cmd"))
	if err != nil {
		t.Fatal(err)
	}
	for _, d := range dirs {
		if d.IsDir() && !strings.Contains(build, d.Name()) {
			t.Errorf("make help's build line %q does not name %s", build, d.Name())
		}
	}
}

// TestDataIsIgnored: `make run`'s ./data is not offered to git.
func TestDataIsIgnored(t *testing.T) {
	if testing.Short() {
		t.Skip("integration test")
	}
	if _, err := exec.LookPath("git"); err != nil {
		t.Skip("git is not on PATH")
	}
	cmd := exec.Command("git", "check-ignore", "-q", "--no-index", "data/db/MANIFEST-000001")
	cmd.Dir = repoRoot
	if err := cmd.Run(); err != nil {
		t.Errorf("git check-ignore data/db/MANIFEST-000001: %v (want ./data in .gitignore)", err)
	}
}

// TestReadmeSaysWhatMakeTestFetches: the README warns that the first
// `make test` downloads the Go modules and staticcheck.
func TestReadmeSaysWhatMakeTestFetches(t *testing.T) {
	if testing.Short() {
		t.Skip("integration test")
	}
	b, err := os.ReadFile(filepath.Join(repoRoot, "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	readme := string(b)
	i := strings.Index(readme, "make test\n")
	if i < 0 {
		t.Fatal("the README does not show make test")
	}
	next := strings.Join(strings.Fields(readme[i:min(len(readme), i+600)]), " ")
	for _, want := range []string{"fetches the Go modules", "staticcheck", "network"} {
		if !strings.Contains(next, want) {
			t.Errorf("the README's words after make test do not say %q:\n%s", want, next)
		}
	}
}
