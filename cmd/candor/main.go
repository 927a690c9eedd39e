// Command candor is the Candor client.
//
//	candor submit commit [--repo DIR] --key FILE [<rev>]
//	candor submit build --key FILE envelope.json
//	candor submit image --key FILE REGISTRY/REPOSITORY@sha256:HEX
//	                                 log a signed commit, a build attestation or
//	                                 an image signature and keep its proof bundle
//	candor bench --url URL [flags]   load-test a running log
//	candor prove --log URL --policy FILE (--index N | --leaf-hash H | --commit ID | --digest ALG:HEX)
//	                                 fetch a fresh, verified proof bundle of an entry
//	candor checkpoint --log URL --policy FILE
//	                                 print the latest checkpoint and check it against the policy
//	candor verify --bundle FILE --policy FILE (--artifact FILE | --commit [REPO@]REV | --image REF@DIGEST | --entry FILE)
//	                                 check a proof bundle offline under a witness policy
//	candor verify-evidence FILE --log-key VKEY
//	                                 check evidence of log misbehaviour offline
//	candor search --log URL [--commit ID] [--repository NAME] [--digest ALG:HEX] [--key FP] [--image DIGEST] [--identity SAN] [--issuer URL]
//	                                 find a log's entries by their terms
//
// Run "candor <command> -h" for a command's flags.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"

	"github.com/candorlog/candor/internal/buildinfo"
)

// command is one subcommand: run gets the arguments after its name.
type command struct {
	name    string
	summary string
	run     func(ctx context.Context, args []string, stdout, stderr io.Writer) error
}

var commands = []command{
	{"submit", "log a signed git commit, a build attestation or an image signature, and keep its proof", runSubmit},
	{"bench", "load-test a running log: submissions, proofs, tiles or entry bundles", runBench},
	{"prove", "fetch a fresh, verified proof bundle of an entry of a log", runProve},
	{"checkpoint", "print a log's latest checkpoint and whether it meets a witness policy", runCheckpoint},
	{"monitor", "follow a log, check every entry again and alert on the ones a watch list names", runMonitor},
	{"verify", "check offline that a proof bundle logs an artifact, commit or image under a witness policy", runVerify},
	{"verify-evidence", "check offline that witness evidence proves a log misbehaved", runVerifyEvidence},
	{"search", "find a log's entries by commit, repository, digest or key", runSearch},
}

// errUsage is a command's error for arguments it cannot run with, after it
// printed its usage: the exit code is 2.
var errUsage = errors.New("usage")

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	os.Exit(run(ctx, os.Args[1:], os.Stdout, os.Stderr))
}

// run runs the command named by args[0] and returns the exit code.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		usage(stderr)
		return 2
	}
	if args[0] == "-h" || args[0] == "--help" || args[0] == "help" {
		usage(stderr)
		return 0
	}
	if args[0] == "-version" || args[0] == "--version" {
		fmt.Fprintf(stdout, "candor %s\n", buildinfo.Read())
		return 0
	}
	for _, c := range commands {
		if c.name != args[0] {
			continue
		}
		for _, a := range args[1:] {
			if a == "--" {
				break
			}
			if a == "-version" || a == "--version" {
				fmt.Fprintf(stdout, "candor %s %s\n", c.name, buildinfo.Read())
				return 0
			}
		}
		err := c.run(ctx, args[1:], stdout, stderr)
		var code *exitCode
		switch {
		case errors.As(err, &code):
			fmt.Fprintf(stderr, "candor %s: %s\n", c.name, code.msg)
			return code.code
		case errors.Is(err, flag.ErrHelp):
			return 0
		case errors.Is(err, errUsage):
			return 2
		case err != nil:
			fmt.Fprintf(stderr, "candor %s: %v\n", c.name, err)
			return 1
		}
		return 0
	}
	fmt.Fprintf(stderr, "candor: unknown command %q\n", args[0])
	usage(stderr)
	return 2
}

func usage(w io.Writer) {
	fmt.Fprintln(w, "usage: candor <command> [flags]   (candor --version prints the version)\n\ncommands:")
	for _, c := range commands {
		fmt.Fprintf(w, "  %-16s %s\n", c.name, c.summary)
	}
}
