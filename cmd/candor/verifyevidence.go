package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"

	"github.com/candorlog/candor/api"
)

// runVerifyEvidence is "candor verify-evidence <file> --log-key VKEY": it
// checks, offline and with only the log's public key, that evidence (as
// witnesses serve it at GET /v1/evidence, api.Evidence) proves that the
// log misbehaved. It succeeds only if it does, and if the evidence is in
// the canonical form that witnesses serve (api.Evidence.Canonical): each
// checkpoint with the log's signature only, the smaller size first, and
// only the tiles that prove an inconsistency. Other forms of one piece of
// evidence are refused, so that one misbehaviour has one form.
func runVerifyEvidence(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("candor verify-evidence", flag.ContinueOnError)
	fs.SetOutput(stderr)
	logKey := fs.String("log-key", "", "the log's signed-note verifier `key` (name+id+key), required")
	fs.Usage = func() {
		fmt.Fprintln(stderr, "usage: candor verify-evidence <file> --log-key VKEY\n\nExits 0 if the evidence in file (- for stdin) proves that the log misbehaved\nand is in the canonical form that witnesses serve.")
		fs.PrintDefaults()
	}
	// The file may come before the flags.
	var file string
	if len(args) > 0 && (args[0] == "-" || len(args[0]) > 0 && args[0][0] != '-') {
		file, args = args[0], args[1:]
	}
	if err := fs.Parse(args); err != nil {
		return err
	}
	if file == "" && fs.NArg() == 1 {
		file = fs.Arg(0)
	} else if fs.NArg() > 0 {
		return fmt.Errorf("unexpected arguments %q", fs.Args())
	}
	if file == "" || *logKey == "" {
		fs.Usage()
		return errUsage
	}
	v, err := api.NewNoteVerifier(*logKey)
	if err != nil {
		return fmt.Errorf("--log-key: %w", err)
	}
	if _, ok := v.(*api.CosignatureVerifier); ok {
		return errors.New("--log-key: a witness's cosignature key, not a log's key")
	}
	var b []byte
	if file == "-" {
		b, err = io.ReadAll(io.LimitReader(os.Stdin, api.MaxEvidenceSize+1))
	} else {
		b, err = os.ReadFile(file)
	}
	if err != nil {
		return fmt.Errorf("couldn't read the evidence: %w", err)
	}
	e, err := api.ParseEvidence(b)
	if err != nil {
		return err
	}
	cps, err := e.VerifyCanonical(v)
	if errors.Is(err, api.ErrNotCanonical) {
		return fmt.Errorf("refused: %w", err)
	}
	if err != nil {
		return fmt.Errorf("the evidence does NOT prove misbehaviour: %w", err)
	}
	switch e.Kind {
	case api.EvidenceEquivocation:
		fmt.Fprintf(stdout, "VERIFIED: the log %s equivocated: it signed two different trees of size %d (roots %x and %x).\n",
			e.Origin, cps[0].Size, cps[0].Hash, cps[1].Hash)
	case api.EvidenceBadEntry:
		fmt.Fprintf(stdout, "VERIFIED: the log %s holds at index %d of its tree of size %d an entry it should have refused: %v\n",
			e.Origin, e.Entry.Index, cps[0].Size, e.BadEntryReason())
	default:
		fmt.Fprintf(stdout, "VERIFIED: the log %s signed inconsistent checkpoints: the tree of size %d is not a prefix of its tree of size %d (proven by %d of its tiles).\n",
			e.Origin, cps[0].Size, cps[1].Size, len(e.Tiles))
	}
	return nil
}
