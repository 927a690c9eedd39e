// Command candor-log runs a Candor transparency log on embedded pebble.
//
//	candor-log --data DIR --listen HOST:PORT --origin ORIGIN   serve the log
//	           [--policy FILE]                                 publish only checkpoints cosigned by FILE's witnesses
//	candor-log fsck --data DIR                                 re-verify the stored log
package main

import (
	"context"
	"crypto/rand"
	"errors"
	"flag"
	"fmt"
	"io"
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
	"github.com/candorlog/candor/internal/cli"
	"github.com/candorlog/candor/internal/diskspace"
	"github.com/candorlog/candor/internal/keyfile"
	"github.com/candorlog/candor/log"
	"github.com/candorlog/candor/log/witnessing"
	"github.com/candorlog/candor/storage/pebble"
)

func main() {
	cli.Main("candor-log", serve, map[string]cli.Command{"fsck": fsck})
}

func serve(ctx context.Context, args []string, stdout io.Writer) error {
	c, err := loadConfig(flag.NewFlagSet("candor-log", flag.ContinueOnError), args)
	if err != nil {
		return err
	}
	logger := cli.NewLogger(os.Stderr, c.LogLevel, c.LogFormat)
	if err := os.MkdirAll(c.Data, 0o700); err != nil {
		return fmt.Errorf("couldn't create the data directory: %w", err)
	}
	signer, verifier, vkey, err := loadOrCreateKey(c.Key, c.Origin, logger)
	if err != nil {
		return err
	}
	store, err := pebble.Open(filepath.Join(c.Data, "db"), pebble.Options{CacheBytes: c.CacheMiB << 20, Logger: logger})
	if err != nil {
		return err
	}
	defer store.Close()

	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	space, err := diskspace.New(c.Data, c.MinFreeBytes, diskspace.Options{Logger: logger, Registerer: reg, Namespace: "candor_log"})
	if err != nil {
		return err
	}
	go space.Run(ctx)
	var policySummary string
	var collector log.Witnessing
	if c.Policy != "" {
		coll, summary, err := newCollector(c, verifier, logger, reg)
		if err != nil {
			return err
		}
		collector, policySummary = coll, summary
	}
	l, err := log.New(ctx, log.Config{
		Storage:      store,
		Signer:       signer,
		Verifier:     verifier,
		Logger:       logger,
		MaxBatchSize: c.MaxBatchSize,
		MaxPending:   c.MaxPending,
		Registerer:   reg,
		Witnessing:   collector,
		CheckSpace:   space.Check,
	})
	if err != nil {
		return err
	}
	defer l.Close()

	mux := http.NewServeMux()
	mux.Handle("/", log.NewHandler(l, log.HandlerOptions{
		MaxBodyBytes: c.MaxBodyBytes,
		MaxInFlight:  c.MaxInFlight,
		Logger:       logger,
		Registerer:   reg,
		WitnessWait:  c.WitnessWait,
	}))
	mux.Handle("GET /metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))

	ln, err := net.Listen("tcp", c.Listen)
	if err != nil {
		return fmt.Errorf("couldn't listen: %w", err)
	}
	_, size := l.Checkpoint()
	fmt.Fprintf(stdout, "candor-log: origin %s, tree size %d\n", l.Origin(), size)
	fmt.Fprintf(stdout, "candor-log: verifier key %s\n", vkey)
	if policySummary != "" {
		fmt.Fprintf(stdout, "candor-log: witness policy %s\n", policySummary)
	}
	fmt.Fprintf(stdout, "candor-log: listening on http://%s\n", ln.Addr())
	logger.Info("serving", "origin", l.Origin(), "size", size, "addr", ln.Addr().String())
	return cli.Serve(ctx, ln, mux, logger)
}

// maxPolicyBytes bounds the policy file, which ParsePolicy does not.
const maxPolicyBytes = 1 << 20

// newCollector reads the policy file and returns the witness collector and
// a one-line summary of the policy.
func newCollector(c Config, verifier note.Verifier, logger *slog.Logger, reg prometheus.Registerer) (*witnessing.Collector, string, error) {
	f, err := os.Open(c.Policy)
	if err != nil {
		return nil, "", fmt.Errorf("couldn't read the policy: %w", err)
	}
	defer f.Close()
	text, err := io.ReadAll(io.LimitReader(f, maxPolicyBytes+1))
	if err != nil {
		return nil, "", fmt.Errorf("couldn't read the policy: %w", err)
	}
	if len(text) > maxPolicyBytes {
		return nil, "", fmt.Errorf("policy %s: larger than %d bytes", c.Policy, maxPolicyBytes)
	}
	policy, err := api.ParsePolicy(text)
	if err != nil {
		return nil, "", fmt.Errorf("policy %s: %w", c.Policy, err)
	}
	coll, err := witnessing.New(witnessing.Config{
		Policy:     policy,
		Verifier:   verifier,
		Timeout:    c.WitnessTimeout,
		MaxBackoff: c.WitnessRetryMax,
		StateFile:  filepath.Join(c.Data, "witnessed-checkpoint"),
		Logger:     logger,
		Registerer: reg,
	})
	if err != nil {
		return nil, "", fmt.Errorf("policy %s: %w", c.Policy, err)
	}
	return coll, fmt.Sprintf("%s: %d witnesses, quorum %s", c.Policy, len(policy.Witnesses()), policy.Quorum()), nil
}

// loadOrCreateKey reads the log's signed-note private key from path, or
// creates one named origin (mode 0600) if the file does not exist.
func loadOrCreateKey(path, origin string, logger *slog.Logger) (note.Signer, note.Verifier, string, error) {
	skey, created, err := keyfile.LoadOrCreate(path, func() (string, error) {
		if origin == "" {
			return "", fmt.Errorf("no key at %s: give --origin to create one", path)
		}
		skey, _, err := note.GenerateKey(rand.Reader, origin)
		return skey, err
	})
	if err != nil {
		return nil, nil, "", err
	}
	if created {
		logger.Info("created a new log key", "path", path, "origin", origin)
	}
	signer, err := note.NewSigner(skey)
	if err != nil {
		return nil, nil, "", fmt.Errorf("key %s: %w", path, err)
	}
	if origin != "" && signer.Name() != origin {
		return nil, nil, "", fmt.Errorf("key %s is for origin %q, not %q", path, signer.Name(), origin)
	}
	vkey, err := api.VerifierKey(skey)
	if err != nil {
		return nil, nil, "", fmt.Errorf("key %s: %w", path, err)
	}
	verifier, err := note.NewVerifier(vkey)
	if err != nil {
		return nil, nil, "", fmt.Errorf("key %s: %w", path, err)
	}
	return signer, verifier, vkey, nil
}

func fsck(ctx context.Context, args []string, stdout io.Writer) error {
	fs := flag.NewFlagSet("candor-log fsck", flag.ContinueOnError)
	data := fs.String("data", "", "`directory` of the log to check (required)")
	keyPath := fs.String("key", "", "signed-note private key `file` (default <data>/log.key)")
	vkeyFlag := fs.String("verifier-key", "", "the log's verifier `key`, instead of the private key")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *data == "" {
		return errors.New("fsck: --data is required")
	}
	vkey := *vkeyFlag
	if vkey == "" {
		if *keyPath == "" {
			*keyPath = filepath.Join(*data, "log.key")
		}
		b, err := os.ReadFile(*keyPath)
		if err != nil {
			return fmt.Errorf("couldn't read the key (or give --verifier-key): %w", err)
		}
		if vkey, err = api.VerifierKey(string(b)); err != nil {
			return fmt.Errorf("key %s: %w", *keyPath, err)
		}
	}
	verifier, err := note.NewVerifier(vkey)
	if err != nil {
		return fmt.Errorf("verifier key: %w", err)
	}
	logger := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	store, err := pebble.Open(filepath.Join(*data, "db"), pebble.Options{Logger: logger})
	if err != nil {
		return err
	}
	defer store.Close()
	start := time.Now()
	last := start
	size, err := log.Fsck(ctx, store, verifier, func(n uint64) {
		if time.Since(last) > 5*time.Second {
			last = time.Now()
			fmt.Fprintf(stdout, "fsck: %d entries checked\n", n)
		}
	})
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "fsck: ok: %d entries, tiles and checkpoint verified in %s\n", size, time.Since(start).Round(time.Millisecond))
	return nil
}
