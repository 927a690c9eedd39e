// Command candor-log runs a Candor transparency log on embedded pebble.
//
//	candor-log --data DIR --listen HOST:PORT --origin ORIGIN   serve the log
//	           [--policy FILE]                                 publish only checkpoints cosigned by FILE's witnesses
//	candor-log fsck --data DIR                                 re-verify the stored log
//	candor-log reindex --data DIR                              rebuild the search index from the entries
//	candor-log recompress-bundles --data DIR                   rewrite the bundle files with zstd
//	candor-log trillian init --trillian HOST:PORT              create a tree on a Trillian log server
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
	"net/url"
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
	"github.com/candorlog/candor/log"
	"github.com/candorlog/candor/log/witnessing"
	"github.com/candorlog/candor/storage/pebble"
	"github.com/candorlog/candor/storage/trillian"
)

func main() {
	cli.Main("candor-log", serve, subcommands...)
}

var subcommands = []cli.Subcommand{
	{Name: "fsck", Summary: "re-verify the stored log: entries, tiles and checkpoint", Run: fsck},
	{Name: "reindex", Summary: "rebuild the search index from the stored entries (log stopped)", Run: reindex},
	{Name: "recompress-bundles", Summary: "rewrite the bundle files with zstd, as new bundles are written (log stopped)", Run: recompressBundles},
	{Name: "trillian", Summary: "init: create the log's tree on a Trillian log server", Run: trillianCmd},
}

func serve(ctx context.Context, args []string, stdout io.Writer) (err error) {
	c, err := loadConfig(flag.NewFlagSet("candor-log", flag.ContinueOnError), args)
	if err != nil {
		return err
	}
	logger := cli.NewLogger(os.Stderr, c.LogLevel, c.LogFormat)
	defer func() { err = cli.LogExit(logger, c.LogFormat, err) }()
	setMemoryLimit(c, logger)
	// Everything that can refuse the start comes before a new key is
	// saved: the key, the policy, the listen address, the database.
	key, err := loadOrGenerateKey(c.Key, c.Origin)
	if err != nil {
		return err
	}
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}), buildinfo.NewCollector())
	var policySummary string
	var collector *witnessing.Collector
	if c.Policy != "" {
		if collector, policySummary, err = newCollector(c, key.verifier, logger, reg); err != nil {
			return err
		}
	}
	var publication log.Witnessing
	if collector != nil {
		publication = collector
	}
	var publisher *trillian.Publisher
	if c.Storage == "trillian" {
		if publisher, err = newPublisher(ctx, c, key.verifier, collector, logger, reg); err != nil {
			return err
		}
		defer publisher.Close()
		publication = publisher
	}
	var trustedRoot *api.TrustedRoot
	if c.TrustedRoot != "" {
		b, err := os.ReadFile(c.TrustedRoot)
		if err != nil {
			return fmt.Errorf("trustedRoot: %w", err)
		}
		if trustedRoot, err = api.ParseTrustedRoot(b); err != nil {
			return fmt.Errorf("trustedRoot %s: %w", c.TrustedRoot, err)
		}
		logger.Info("taking only certificates that these certificate authorities issued", "trusted_root", c.TrustedRoot, "certificate_authorities", trustedRoot.CertificateAuthorities())
	}
	if err := os.MkdirAll(c.Data, 0o700); err != nil {
		return fmt.Errorf("couldn't create the data directory: %w", err)
	}
	space, err := diskspace.New(c.Data, c.MinFreeBytes, diskspace.Options{Logger: logger, Registerer: reg, Namespace: "candor_log"})
	if err != nil {
		return err
	}
	go space.Run(ctx)
	ln, err := net.Listen("tcp", c.Listen)
	if err != nil {
		return fmt.Errorf("couldn't listen: %w", err)
	}
	defer ln.Close()
	store, err := pebble.Open(filepath.Join(c.Data, "db"), pebble.Options{
		CacheBytes: c.CacheMiB << 20, LeafFilterBytes: c.LeafFilterMiB << 20, TileFiles: c.TileFiles, BundleFiles: c.BundleFiles, CheckSpace: space.Check,
		Logger: logger, Registerer: reg,
	})
	if err != nil {
		return err
	}
	defer store.Close()
	if key.created {
		if err := keyfile.Create(c.Key, key.skey); err != nil {
			return err
		}
		logger.Info("created a new log key", "path", c.Key, "origin", c.Origin)
	}
	signer, verifier, vkey := key.signer, key.verifier, key.vkey

	l, err := log.New(ctx, log.Config{
		Storage:      store,
		Signer:       signer,
		Verifier:     verifier,
		Logger:       logger,
		MaxBatchSize: c.MaxBatchSize,
		MaxPending:   c.MaxPending,
		Registerer:   reg,
		Witnessing:   publication,
		CheckSpace:   space.Check,
	})
	if err != nil {
		return err
	}
	defer l.Close()
	var adder log.Adder
	if c.Storage == "trillian" {
		m, stop, err := startMirror(ctx, c, l, trillian.AdmissionKey(key.skey), publisher, logger, reg)
		if err != nil {
			return err
		}
		defer stop()
		adder = m
	}

	mux := http.NewServeMux()
	logHandler := log.NewHandler(l, log.HandlerOptions{
		MaxBodyBytes: c.MaxBodyBytes,
		MaxInFlight:  c.MaxInFlight,
		Logger:       logger,
		Registerer:   reg,
		WitnessWait:  c.WitnessWait,
		TrustedRoot:  trustedRoot,
		Adder:        adder,

		MaxInFlightPerClient: c.MaxInFlightPerClient,
		BodyTimeout:          c.BodyTimeout,
	})
	mux.Handle("/", logHandler)
	mux.Handle("GET /metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))

	_, size := l.Checkpoint()
	say := cli.NewStartup(stdout, "candor-log", c.LogFormat)
	say.Say("log", fmt.Sprintf("origin %s, tree size %d", l.Origin(), size), "origin", l.Origin(), "size", size)
	if c.Storage == "trillian" {
		say.Say("trillian", fmt.Sprintf("on Trillian tree %d at %s, mirrored in %s", c.Trillian.TreeID, c.Trillian.Address, c.Data),
			"trillian", c.Trillian.Address, "tree", c.Trillian.TreeID)
	}
	say.Say("verifier key", "verifier key "+vkey, "vkey", vkey)
	if policySummary != "" {
		say.Say("witness policy", "witness policy "+policySummary, "policy", policySummary)
	}
	listenURL := "http://" + ln.Addr().String()
	say.Say("listening", "listening on "+listenURL, "url", listenURL)
	// The mux would serve an escaped path as the path and redirect an
	// unclean one: the log's handler answers them (404).
	return cli.Serve(ctx, ln, exactpath.Handler(mux, logHandler), logger)
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
	for _, w := range policy.Witnesses() {
		if err := checkWitnessURL(w.URL); w.URL != "" && err != nil {
			return nil, "", fmt.Errorf("policy %s: witness %s: %w", c.Policy, w.Name, err)
		}
	}
	coll, err := witnessing.New(witnessing.Config{
		Policy:     policy,
		Verifier:   verifier,
		Timeout:    c.WitnessTimeout,
		MaxBackoff: c.WitnessRetryMax,
		StateFile:  filepath.Join(c.Data, "witnessed-checkpoint"),
		Logger:     logger,
		Registerer: reg,
		ReadyWait:  c.WitnessWait,
		SharedTree: c.Storage == "trillian",
	})
	if err != nil {
		return nil, "", fmt.Errorf("policy %s: %w", c.Policy, err)
	}
	return coll, fmt.Sprintf("%s: %d witnesses, quorum %s", c.Policy, len(policy.Witnesses()), policy.Quorum()), nil
}

// logKey is the log's signed-note key, read from its file or generated.
type logKey struct {
	skey     string
	created  bool // generated: not saved yet
	signer   note.Signer
	verifier note.Verifier
	vkey     string
}

// checkWitnessURL checks a witness's add-checkpoint URL prefix from the
// policy: an absolute http or https URL with a host and no query or
// fragment, so that a URL the log could never reach (127.0.0.1:1 without
// a scheme) stops the start instead of failing in the background.
func checkWitnessURL(s string) error {
	u, err := url.Parse(s)
	if err != nil {
		return fmt.Errorf("url %q: %w", s, err)
	}
	if u.Scheme != "http" && u.Scheme != "https" || u.Host == "" || u.Opaque != "" {
		return fmt.Errorf("url %q: want an http or https URL, such as https://witness.example.com/", s)
	}
	if u.RawQuery != "" || u.Fragment != "" || u.User != nil {
		return fmt.Errorf("url %q: want no query, fragment or user", s)
	}
	return nil
}

// loadOrGenerateKey reads the log's signed-note private key from path, or
// generates one named origin if the file does not exist, which the caller
// saves once the log can start.
func loadOrGenerateKey(path, origin string) (logKey, error) {
	k := logKey{}
	skey, err := keyfile.Load(path)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		if origin == "" {
			return k, fmt.Errorf("no key at %s: give --origin to create one", path)
		}
		if skey, _, err = note.GenerateKey(rand.Reader, origin); err != nil {
			return k, fmt.Errorf("couldn't generate a key: %w", err)
		}
		k.created = true
	case err != nil:
		return k, err
	}
	k.skey = skey
	if k.signer, err = note.NewSigner(skey); err != nil {
		return k, keyfile.Corrupt(path, errors.New("not a signed-note private key"))
	}
	if origin != "" && k.signer.Name() != origin {
		return k, fmt.Errorf("key %s is for origin %q, not %q", path, k.signer.Name(), origin)
	}
	if k.vkey, err = api.VerifierKey(skey); err != nil {
		return k, keyfile.Corrupt(path, err)
	}
	if k.verifier, err = note.NewVerifier(k.vkey); err != nil {
		return k, keyfile.Corrupt(path, err)
	}
	return k, nil
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
	store, err := pebble.Open(filepath.Join(*data, "db"), pebble.Options{Logger: logger, LeafFilterBytes: -1})
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
	// The store reads pebble's tiles alone (no TileFiles): fsck checked
	// those; the files' copies are compared with them here.
	copies, err := store.CheckTileFiles(ctx)
	if err != nil {
		return fmt.Errorf("%w (the tile files are copies: delete %s and candor-log writes them again)", err, filepath.Join(*data, "db", "tiles"))
	}
	if copies.Unusable > 0 {
		fmt.Fprintf(stdout, "fsck: %d records of the tile files are torn or unwritten: reads take those tiles from pebble, and candor-log writes them again\n", copies.Unusable)
	}
	fmt.Fprintf(stdout, "fsck: ok: %d entries, tiles (and %d copies in the tile files) and checkpoint verified in %s\n", size, copies.Checked, time.Since(start).Round(time.Millisecond))
	return nil
}
