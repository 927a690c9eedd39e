package main

import (
	"testing"

	"github.com/candorlog/candor/internal/cli/clitest"
)

// TestHelpAndVersion: --help lists the subcommands and exits 0, and
// --version prints the build, on the command and its subcommands.
func TestHelpAndVersion(t *testing.T) {
	clitest.HelpAndVersion(t, "candor-witness", serve, subcommands)
}
