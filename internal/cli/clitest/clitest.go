// Package clitest checks what every server command built with
// internal/cli must do on the command line.
package clitest

import (
	"bytes"
	"context"
	"strings"
	"testing"

	"github.com/candorlog/candor/internal/cli"
)

// HelpAndVersion checks that --help lists the subcommands and exits 0,
// that --version prints the build on the command and its subcommands, and
// that an unknown flag does not exit 0. subs must not be empty.
func HelpAndVersion(t *testing.T, name string, def cli.Command, subs []cli.Subcommand) {
	t.Helper()
	ctx := context.Background()
	sub := subs[0].Name
	run := func(args ...string) (int, string, string) {
		var stdout, stderr bytes.Buffer
		code := cli.Run(ctx, name, def, subs, args, &stdout, &stderr)
		return code, stdout.String(), stderr.String()
	}
	for _, args := range [][]string{{"--help"}, {"-h"}, {"--data", "/d", "-help"}} {
		if code, _, stderr := run(args...); code != 0 || !strings.Contains(stderr, sub+" ") {
			t.Errorf("%s %q: exit code %d, stderr %q; want 0 and the subcommands", name, args, code, stderr)
		}
	}
	if code, _, _ := run(sub, "-h"); code != 0 {
		t.Errorf("%s %s -h: exit code %d, want 0", name, sub, code)
	}
	for _, args := range [][]string{{"--version"}, {"--data", "/d", "-version"}, {sub, "--version"}} {
		if code, stdout, _ := run(args...); code != 0 || !strings.HasPrefix(stdout, name+" ") || !strings.Contains(stdout, "(revision ") {
			t.Errorf("%s %q: exit code %d, stdout %q; want 0 and the version", name, args, code, stdout)
		}
	}
	if code, _, _ := run("--no-such-flag"); code == 0 {
		t.Errorf("%s: an unknown flag exited 0", name)
	}
}
