// Command candor-witness runs a Candor witness: it cosigns checkpoints of
// the logs it follows (c2sp.org/tlog-witness POST /add-checkpoint, or
// polled from the log's c2sp.org/tlog-tiles API for a log with a url) when
// they are signed by the log and consistent with the last one it cosigned,
// and keeps that one per log in an embedded pebble database.
//
// With gossip configured, it also gossips with the other witnesses it
// trusts (witness/gossip) and turns split views into evidence, after which
// it refuses to cosign for the log until the operator, with the witness
// stopped, runs clear-evidence.
//
//	candor-witness --data DIR --listen HOST:PORT --name NAME --config FILE
//	candor-witness clear-evidence --data DIR --origin ORIGIN
package main

import (
	"context"
	"crypto/rand"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"golang.org/x/mod/sumdb/note"

	"github.com/candorlog/candor/api"
	"github.com/candorlog/candor/internal/buildinfo"
	"github.com/candorlog/candor/internal/cli"
	"github.com/candorlog/candor/internal/diskspace"
	"github.com/candorlog/candor/internal/exactpath"
	"github.com/candorlog/candor/internal/keyfile"
	"github.com/candorlog/candor/storage/pebble"
	"github.com/candorlog/candor/witness"
	"github.com/candorlog/candor/witness/gossip"
)

func main() {
	cli.Main("candor-witness", serve, subcommands...)
}

var subcommands = []cli.Subcommand{
	{Name: "clear-evidence", Summary: "delete the evidence held against a log, with the witness stopped", Run: clearEvidence},
}

func serve(ctx context.Context, args []string, stdout io.Writer) (err error) {
	c, err := loadConfig(flag.NewFlagSet("candor-witness", flag.ContinueOnError), args)
	if err != nil {
		return err
	}
	logger := cli.NewLogger(os.Stderr, c.LogLevel, c.LogFormat)
	defer func() { err = cli.LogExit(logger, c.LogFormat, err) }()
	logs, err := c.witnessLogs()
	if err != nil {
		return err
	}
	// Everything that can refuse the start comes before a new key is
	// saved: the key, the listen address, the database.
	key, err := loadOrGenerateKey(c.Key, c.Name)
	if err != nil {
		return err
	}
	cosigner := key.cosigner
	if err := os.MkdirAll(c.Data, 0o700); err != nil {
		return fmt.Errorf("couldn't create the data directory: %w", err)
	}
	ln, err := net.Listen("tcp", c.Listen)
	if err != nil {
		return fmt.Errorf("couldn't listen: %w", err)
	}
	defer ln.Close()
	state, err := pebble.OpenWitnessState(filepath.Join(c.Data, "db"), pebble.Options{Logger: logger})
	if err != nil {
		return err
	}
	defer state.Close()
	if key.created {
		if err := keyfile.Create(c.Key, key.skey); err != nil {
			return err
		}
		logger.Info("created a new witness key", "path", c.Key, "name", c.Name, "vkey", cosigner.VerifierKey())
	}

	peers, err := c.peerVerifiers()
	if err != nil {
		return err
	}
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}), buildinfo.NewCollector())
	space, err := diskspace.New(c.Data, c.MinFreeBytes, diskspace.Options{Logger: logger, Registerer: reg, Namespace: "candor_witness"})
	if err != nil {
		return err
	}
	go space.Run(ctx)
	w, err := witness.New(witness.Config{Cosigner: cosigner, Logs: logs, State: state, Evidence: state, Audit: state,
		Peers: peers, Logger: logger, Registerer: reg, CheckSpace: space.Check})
	if err != nil {
		return err
	}
	if evs := w.Evidence(); len(evs) > 0 {
		for origin, e := range evs {
			logger.Error("the witness holds evidence against a log and refuses to cosign for it; see candor-witness clear-evidence",
				"origin", origin, "evidence", len(e))
		}
	}
	h, err := witness.NewHandler(w, witness.HandlerOptions{Logger: logger, Registerer: reg,
		MaxInFlightPerClient: c.MaxInFlightPerClient, BodyTimeout: c.BodyTimeout})
	if err != nil {
		return err
	}
	puller, err := witness.NewPuller(w, witness.PullerConfig{Sources: c.pullSources(), Logger: logger, Registerer: reg})
	if err != nil {
		return err
	}
	mux := http.NewServeMux()
	mux.Handle("/", h)
	mux.Handle("GET /metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))

	say := cli.NewStartup(stdout, "candor-witness", c.LogFormat)
	say.Say("witness", fmt.Sprintf("name %s, following %d logs", cosigner.Name(), len(logs)), "name", cosigner.Name(), "logs", len(logs))
	say.Say("verifier key", "verifier key "+cosigner.VerifierKey(), "vkey", cosigner.VerifierKey())
	listenURL := "http://" + ln.Addr().String()
	say.Say("listening", "listening on "+listenURL, "url", listenURL)

	if c.Gossip.Listen != "" {
		secret, err := c.gossipSecret()
		if err != nil {
			return err
		}
		g, err := gossip.Start(w, gossip.Config{Listen: c.Gossip.Listen, Join: c.Gossip.Join, Expect: c.gossipMembers(),
			SecretKey: secret, Logger: logger, Registerer: reg})
		if err != nil {
			return err
		}
		// Stopped before the state closes (defers run last in, first out).
		defer g.Close(5 * time.Second)
		say.Say("gossip", fmt.Sprintf("gossip on %s, %d peers, encrypted %v", g.Addr(), len(peers), secret != nil),
			"addr", g.Addr(), "peers", len(peers), "encrypted", secret != nil)
	}

	if sources := c.pullSources(); len(sources) > 0 {
		// Stopped before the state closes (defers run last in, first out).
		pctx, stopPull := context.WithCancel(ctx)
		pulled := make(chan struct{})
		go func() {
			defer close(pulled)
			puller.Run(pctx)
		}()
		defer func() {
			stopPull()
			<-pulled
		}()
	}
	// The mux would serve an escaped path as the path and redirect an
	// unclean one: the witness's handler answers them (404).
	return cli.Serve(ctx, ln, exactpath.Handler(mux, h), logger)
}

// witnessLogs returns the configured logs with their verifiers. A log's
// key must be an Ed25519 signed-note key (type 0x01) named by its origin.
func (c Config) witnessLogs() ([]witness.Log, error) {
	var logs []witness.Log
	for i, l := range c.Logs {
		v, err := note.NewVerifier(l.Key)
		if err != nil {
			return nil, fmt.Errorf("logs[%d] (%s): key: %w", i, l.Origin, err)
		}
		if v.Name() != l.Origin {
			return nil, fmt.Errorf("logs[%d]: the key is named %q, not the origin %q", i, v.Name(), l.Origin)
		}
		logs = append(logs, witness.Log{Origin: l.Origin, Verifier: v, URL: l.URL, Audit: l.Audit})
	}
	return logs, nil
}

// witnessKey is the witness's cosignature/v1 key, read from its file or
// generated.
type witnessKey struct {
	skey     string
	created  bool // generated: not saved yet
	cosigner *api.Cosigner
}

// loadOrGenerateKey reads the witness's cosignature/v1 private key from
// path, or generates one named name if the file does not exist, which the
// caller saves once the witness can start.
func loadOrGenerateKey(path, name string) (witnessKey, error) {
	k := witnessKey{}
	skey, err := keyfile.Load(path)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		if name == "" {
			return k, fmt.Errorf("no key at %s: give --name to create one", path)
		}
		if skey, _, err = api.GenerateCosignerKey(rand.Reader, name); err != nil {
			return k, fmt.Errorf("couldn't generate a key: %w", err)
		}
		k.created = true
	case err != nil:
		return k, err
	}
	k.skey = skey
	if k.cosigner, err = api.NewCosigner(skey, nil); err != nil {
		return k, keyfile.Corrupt(path, errors.New("not a cosignature/v1 private key"))
	}
	if name != "" && k.cosigner.Name() != name {
		return k, fmt.Errorf("key %s is for witness %q, not %q", path, k.cosigner.Name(), name)
	}
	return k, nil
}

// clearEvidence is "candor-witness clear-evidence --data DIR --origin
// ORIGIN": an operator's act, with the witness stopped, after which the
// witness cosigns for the log again. It deletes the evidence the witness
// holds against that log and prints how many pieces it deleted.
func clearEvidence(ctx context.Context, args []string, stdout io.Writer) error {
	fs := flag.NewFlagSet("candor-witness clear-evidence", flag.ContinueOnError)
	data := fs.String("data", "", "the witness's data `directory` (required)")
	origin := fs.String("origin", "", "the `origin` of the log whose evidence to delete (required)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *data == "" || *origin == "" || fs.NArg() > 0 {
		return errors.New("usage: candor-witness clear-evidence --data DIR --origin ORIGIN")
	}
	state, err := pebble.OpenWitnessState(filepath.Join(*data, "db"), pebble.Options{CacheBytes: 8 << 20,
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		return fmt.Errorf("couldn't open the witness state (is the witness still running?): %w", err)
	}
	n, err := state.ClearEvidence(ctx, *origin)
	if err != nil {
		state.Close()
		return err
	}
	fmt.Fprintf(stdout, "candor-witness: deleted %d pieces of evidence against %s\n", n, *origin)
	return state.Close()
}
