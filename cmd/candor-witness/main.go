// Command candor-witness runs a Candor witness: it cosigns checkpoints of
// the logs it follows (c2sp.org/tlog-witness POST /add-checkpoint, or
// polled from the log's c2sp.org/tlog-tiles API for a log with a url) when
// they are signed by the log and consistent with the last one it cosigned,
// and keeps that one per log in an embedded pebble database.
//
//	candor-witness --data DIR --listen HOST:PORT --name NAME --config FILE
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
	"os/signal"
	"path/filepath"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"golang.org/x/mod/sumdb/note"

	"github.com/candorlog/candor/api"
	"github.com/candorlog/candor/internal/keyfile"
	"github.com/candorlog/candor/storage/pebble"
	"github.com/candorlog/candor/witness"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	err := serve(ctx, os.Args[1:], os.Stdout)
	if errors.Is(err, flag.ErrHelp) {
		os.Exit(2)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "candor-witness:", err)
		os.Exit(1)
	}
}

func newLogger(c Config) *slog.Logger {
	var level slog.Level
	level.UnmarshalText([]byte(c.LogLevel))
	opts := &slog.HandlerOptions{Level: level}
	if c.LogFormat == "json" {
		return slog.New(slog.NewJSONHandler(os.Stderr, opts))
	}
	return slog.New(slog.NewTextHandler(os.Stderr, opts))
}

func serve(ctx context.Context, args []string, stdout io.Writer) error {
	c, err := loadConfig(flag.NewFlagSet("candor-witness", flag.ContinueOnError), args)
	if err != nil {
		return err
	}
	logger := newLogger(c)
	logs, err := c.witnessLogs()
	if err != nil {
		return err
	}
	if err := os.MkdirAll(c.Data, 0o700); err != nil {
		return fmt.Errorf("couldn't create the data directory: %w", err)
	}
	cosigner, err := loadOrCreateKey(c.Key, c.Name, logger)
	if err != nil {
		return err
	}
	state, err := pebble.OpenWitnessState(filepath.Join(c.Data, "db"), pebble.Options{Logger: logger})
	if err != nil {
		return err
	}
	defer state.Close()

	w, err := witness.New(witness.Config{Cosigner: cosigner, Logs: logs, State: state, Logger: logger})
	if err != nil {
		return err
	}
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	h, err := witness.NewHandler(w, witness.HandlerOptions{Logger: logger, Registerer: reg})
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

	ln, err := net.Listen("tcp", c.Listen)
	if err != nil {
		return fmt.Errorf("couldn't listen: %w", err)
	}
	srv := &http.Server{
		Handler:           mux,
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       30 * time.Second,
		WriteTimeout:      60 * time.Second,
		IdleTimeout:       120 * time.Second,
		ErrorLog:          slog.NewLogLogger(logger.Handler(), slog.LevelWarn),
	}
	fmt.Fprintf(stdout, "candor-witness: name %s, following %d logs\n", cosigner.Name(), len(logs))
	fmt.Fprintf(stdout, "candor-witness: verifier key %s\n", cosigner.VerifierKey())
	fmt.Fprintf(stdout, "candor-witness: listening on http://%s\n", ln.Addr())
	logger.Info("serving", "name", cosigner.Name(), "logs", len(logs), "addr", ln.Addr().String())

	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
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
	select {
	case err := <-errc:
		return fmt.Errorf("serving: %w", err)
	case <-ctx.Done():
	}
	logger.Info("shutting down")
	sctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := srv.Shutdown(sctx); err != nil {
		return fmt.Errorf("couldn't shut down: %w", err)
	}
	return nil
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
		logs = append(logs, witness.Log{Origin: l.Origin, Verifier: v})
	}
	return logs, nil
}

// loadOrCreateKey reads the witness's cosignature/v1 private key from path,
// or creates one named name (mode 0600) if the file does not exist.
func loadOrCreateKey(path, name string, logger *slog.Logger) (*api.Cosigner, error) {
	skey, created, err := keyfile.LoadOrCreate(path, func() (string, error) {
		if name == "" {
			return "", fmt.Errorf("no key at %s: give --name to create one", path)
		}
		skey, _, err := api.GenerateCosignerKey(rand.Reader, name)
		return skey, err
	})
	if err != nil {
		return nil, err
	}
	cosigner, err := api.NewCosigner(skey, nil)
	if err != nil {
		return nil, fmt.Errorf("key %s: %w", path, err)
	}
	if created {
		logger.Info("created a new witness key", "path", path, "name", name, "vkey", cosigner.VerifierKey())
	}
	if name != "" && cosigner.Name() != name {
		return nil, fmt.Errorf("key %s is for witness %q, not %q", path, cosigner.Name(), name)
	}
	return cosigner, nil
}
