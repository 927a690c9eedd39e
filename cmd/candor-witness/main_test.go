package main

import (
	"bytes"
	"context"
	"strings"
	"testing"

	"github.com/candorlog/candor/internal/cli"
)

// TestHelpAndVersion: --help lists the subcommands and exits 0, and
// --version prints the build, on the command and its subcommands.
func TestHelpAndVersion(t *testing.T) {
	ctx := context.Background()
	for _, args := range [][]string{{"--help"}, {"-h"}, {"--data", "/d", "-help"}} {
		var stdout, stderr bytes.Buffer
		code := cli.Run(ctx, "candor-witness", serve, subcommands, args, &stdout, &stderr)
		if code != 0 || !strings.Contains(stderr.String(), "clear-evidence ") {
			t.Errorf("candor-witness %q: exit code %d, stderr %q; want 0 and the subcommands", args, code, stderr.String())
		}
	}
	var stdout, stderr bytes.Buffer
	if code := cli.Run(ctx, "candor-witness", serve, subcommands, []string{"clear-evidence", "-h"}, &stdout, &stderr); code != 0 {
		t.Errorf("candor-witness clear-evidence -h: exit code %d, want 0", code)
	}
	for _, args := range [][]string{{"--version"}, {"--data", "/d", "-version"}, {"clear-evidence", "--version"}} {
		var stdout, stderr bytes.Buffer
		code := cli.Run(ctx, "candor-witness", serve, subcommands, args, &stdout, &stderr)
		if code != 0 || !strings.HasPrefix(stdout.String(), "candor-witness ") || !strings.Contains(stdout.String(), "(revision ") {
			t.Errorf("candor-witness %q: exit code %d, stdout %q; want 0 and the version", args, code, stdout.String())
		}
	}
	if code := cli.Run(ctx, "candor-witness", serve, subcommands, []string{"--no-such-flag"}, &stdout, &stderr); code == 0 {
		t.Error("an unknown flag exited 0")
	}
}
