package main

import (
	"context"
	"encoding/base64"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"time"

	"github.com/candorlog/candor/api"
	logclient "github.com/candorlog/candor/api/client"
	"github.com/candorlog/candor/internal/atomicfile"
)

// followOptions are the flags of the commands that follow a log under a
// witness policy: candor prove and candor checkpoint.
type followOptions struct {
	logURL, policy, logKey, state string
	maxAge, timeout               time.Duration
}

func (o *followOptions) register(fs *flag.FlagSet) {
	fs.StringVar(&o.logURL, "log", os.Getenv("CANDOR_LOG"), "the log's base `URL` (default $CANDOR_LOG)")
	fs.StringVar(&o.policy, "policy", "", "the c2sp.org/tlog-policy `file`: the log's key and the witness quorum, required")
	fs.StringVar(&o.logKey, "log-key", "", "the log's signed-note verifier `key`, for a policy that lists no logs")
	fs.StringVar(&o.state, "state", "", "keep the last verified checkpoint in this `file`, and refuse one that does not extend it (default: trust the first one seen)")
	fs.DurationVar(&o.maxAge, "max-age", 0, "count only cosignatures made within this `duration` (0: any age)")
	fs.DurationVar(&o.timeout, "timeout", 30*time.Second, "bound on each request")
}

// follow fetches the log's checkpoint and returns a Verifier of the log
// under the policy, with the signed checkpoint as the log served it.
func (o *followOptions) follow(ctx context.Context) (*policyVerifier, []byte, error) {
	c := logclient.New(o.logURL, &http.Client{Timeout: o.timeout})
	signed, err := c.Checkpoint(ctx)
	if err != nil {
		return nil, nil, fmt.Errorf("couldn't fetch the log's checkpoint: %w", err)
	}
	var state logclient.State
	if o.state != "" {
		if state, err = logclient.NewFileState(o.state); err != nil {
			return nil, nil, fmt.Errorf("--state: %w", err)
		}
	}
	v, err := logVerifier(o.policy, o.logKey, o.maxAge, signed, c, state)
	if err != nil {
		return nil, nil, err
	}
	return v, signed, nil
}

// runCheckpoint is "candor checkpoint": it prints the log's latest
// checkpoint, the policy's witnesses that cosigned it and when, and
// whether it meets the policy (exit 0) or not (exit 1).
func runCheckpoint(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("candor checkpoint", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var o followOptions
	o.register(fs)
	fs.Usage = func() {
		fmt.Fprintln(stderr, "usage: candor checkpoint --log URL --policy FILE [--state FILE] [--max-age D]\n\n"+
			"Prints the log's latest checkpoint and its cosigners, and exits 0 only if it\n"+
			"meets the policy (and, with --state, extends the last one verified).")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected arguments %q", fs.Args())
	}
	if o.logURL == "" || o.policy == "" || o.maxAge < 0 {
		fs.Usage()
		return errUsage
	}
	v, signed, err := o.follow(ctx)
	if err != nil {
		return err
	}
	body, err := api.CheckpointBody(signed)
	if err != nil {
		return fmt.Errorf("the log's checkpoint: %w", err)
	}
	cp, err := api.ParseCheckpoint(body)
	if err != nil {
		return fmt.Errorf("the log's checkpoint: %w", err)
	}
	fmt.Fprintf(stdout, "%s\nsize %d\nroot %s\n", cp.Origin, cp.Size, base64.StdEncoding.EncodeToString(cp.Hash[:]))
	now := time.Now()
	for _, w := range v.policy.Witnesses() {
		sig, ok := cosignature(signed, w)
		if !ok {
			fmt.Fprintf(stdout, "witness %s: no cosignature\n", w.Name)
			continue
		}
		if t, err := api.CosignatureTime(sig); err == nil {
			fmt.Fprintf(stdout, "witness %s: cosigned %s (%s ago)\n", w.Name, t.UTC().Format(time.RFC3339), now.Sub(t).Round(time.Second))
		} else {
			fmt.Fprintf(stdout, "witness %s: cosigned\n", w.Name)
		}
	}
	if _, err := v.verifier.Accept(ctx, signed); err != nil {
		return fmt.Errorf("NOT VERIFIED: %w", err)
	}
	fmt.Fprintf(stdout, "VERIFIED: the log's signature and the policy's quorum %q\n", v.policy.Quorum())
	return nil
}

// runProve is "candor prove": it fetches a fresh proof bundle of one entry
// of the log's latest checkpoint, verified under the policy, with the
// entry in its extra line, and writes it for candor verify.
func runProve(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("candor prove", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var o followOptions
	o.register(fs)
	index := fs.Int64("index", -1, "the entry at this `index`")
	leafHash := fs.String("leaf-hash", "", "the entry with this leaf `hash` (hex, or standard or URL base64)")
	commit := fs.String("commit", "", "the signed commit with this `id`, found by search")
	digest := fs.String("digest", "", "the build attestation about this `alg:hex` digest, found by search")
	out := fs.String("out", "", "write the bundle to this `file` (default: <index>.tlog-proof)")
	fs.Usage = func() {
		fmt.Fprintln(stderr, "usage: candor prove --log URL --policy FILE (--index N | --leaf-hash H | --commit ID | --digest ALG:HEX) [--out FILE] [--state FILE]\n\n"+
			"Writes a fresh c2sp.org/tlog-proof bundle of the entry, against the log's latest\n"+
			"checkpoint verified under the policy, with the entry in it; candor verify checks it.")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected arguments %q", fs.Args())
	}
	given := 0
	for _, set := range []bool{*index >= 0, *leafHash != "", *commit != "", *digest != ""} {
		if set {
			given++
		}
	}
	if o.logURL == "" || o.policy == "" || o.maxAge < 0 || given != 1 {
		fs.Usage()
		return errUsage
	}
	v, signed, err := o.follow(ctx)
	if err != nil {
		return err
	}
	cp, err := v.verifier.Accept(ctx, signed)
	if err != nil {
		return fmt.Errorf("NOT VERIFIED: the log's checkpoint: %w", err)
	}
	c := v.verifier.Client()
	var i uint64
	switch {
	case *index >= 0:
		i = uint64(*index)
	case *leafHash != "":
		h, err := api.ParseHash(*leafHash)
		if err != nil {
			return fmt.Errorf("--leaf-hash: %w", err)
		}
		if i, err = c.IndexOf(ctx, h); err != nil {
			return fmt.Errorf("couldn't find the entry with leaf hash %x: %w", h, err)
		}
	default:
		term := api.SearchTerm{Param: api.SearchCommit, Value: *commit}
		if *digest != "" {
			term = api.SearchTerm{Param: api.SearchDigest, Value: *digest}
		}
		r, err := c.Search(ctx, []api.SearchTerm{term}, "", 2)
		if err != nil {
			return fmt.Errorf("couldn't search the log: %w", err)
		}
		switch {
		case len(r.Hits) == 0:
			return fmt.Errorf("no entry of the log's published tree has %s %s", term.Param, term.Value)
		case len(r.Hits) > 1:
			return fmt.Errorf("several entries have %s %s (candor search --%[1]s %[2]s lists them): choose one with --index", term.Param, term.Value)
		}
		i = r.Hits[0].Index
	}
	if i >= cp.Size {
		return fmt.Errorf("index %d is not in the log's tree of size %d", i, cp.Size)
	}
	var entry []byte
	for e, err := range v.verifier.Entries(ctx, cp, i, i+1) {
		if err != nil {
			return fmt.Errorf("NOT VERIFIED: the entry at index %d: %w", i, err)
		}
		entry = e.Data
	}
	b, err := v.verifier.ProveInclusion(ctx, cp, i, logclient.LeafHash(entry))
	if err != nil {
		return fmt.Errorf("NOT VERIFIED: %w", err)
	}
	b.Extra = entry
	if *out == "" {
		*out = fmt.Sprintf("%d.tlog-proof", i)
	}
	if err := atomicfile.Replace(*out, b.Marshal(), 0o644); err != nil {
		return fmt.Errorf("couldn't write the proof bundle: %w", err)
	}
	about := "an entry it can't parse"
	if st, err := api.ParseEntry(entry); err == nil {
		about = describeEntry(st)
	}
	fmt.Fprintf(stdout, "%d\n%s: entry %d of %s, proven in its tree of size %d (%s); proof in %s\n", i, about, i, cp.Origin, cp.Size, v.cosignedBy(cp.Signed), *out)
	return nil
}
