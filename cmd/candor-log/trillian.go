package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"time"

	tpb "github.com/google/trillian"
	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/mod/sumdb/note"

	"github.com/candorlog/candor/log"
	"github.com/candorlog/candor/log/witnessing"
	"github.com/candorlog/candor/storage/trillian"
)

// trillianCmd is "candor-log trillian init": it creates the tree a log
// runs on with a Trillian log server's admin API, and prints its ID.
func trillianCmd(ctx context.Context, args []string, stdout io.Writer) error {
	if len(args) == 0 || args[0] != "init" {
		return errors.New("trillian: usage: candor-log trillian init --trillian HOST:PORT [--plaintext | --ca FILE [--server-name NAME]] [--name NAME]")
	}
	fs := flag.NewFlagSet("candor-log trillian init", flag.ContinueOnError)
	var o trillian.Options
	fs.StringVar(&o.Address, "trillian", "", "`address` (host:port) of the Trillian log server's gRPC API (required)")
	fs.BoolVar(&o.Plaintext, "plaintext", false, "connect without TLS (a server on loopback or a private network only)")
	fs.StringVar(&o.CAFile, "ca", "", "PEM `file` of the authorities that issue the server's certificate (default: the system's)")
	fs.StringVar(&o.ServerName, "server-name", "", "`name` the server's certificate must hold (default: the address's host)")
	name := fs.String("name", "candor", "the tree's display `name` in Trillian")
	timeout := fs.Duration("timeout", 30*time.Second, "how long to wait for the server")
	if err := fs.Parse(args[1:]); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("trillian init: unexpected arguments %q", fs.Args())
	}
	if o.Address == "" {
		return errors.New("trillian init: --trillian is required")
	}
	conn, err := trillian.Dial(o)
	if err != nil {
		return fmt.Errorf("trillian init: %w", err)
	}
	defer conn.Close()
	ctx, cancel := context.WithTimeout(ctx, *timeout)
	defer cancel()
	tree, err := trillian.CreateTree(ctx, conn, *name, "a Candor transparency log")
	if err != nil {
		return fmt.Errorf("trillian init: %w", err)
	}
	fmt.Fprintf(stdout, "created tree %d (%s) on %s: an empty log, sequenced by Trillian's signers\n", tree.TreeId, tree.DisplayName, o.Address)
	return nil
}

// startMirror connects to the Trillian tree of the configuration and
// starts following it into l, the front end's mirror, with the log's
// front ends' admission key. stop ends it.
func startMirror(ctx context.Context, c Config, l *log.Log, admissionKey []byte, pub *trillian.Publisher, logger *slog.Logger, reg prometheus.Registerer) (*trillian.Mirror, func(), error) {
	conn, err := trillian.Dial(trillian.Options{
		Address: c.Trillian.Address, Plaintext: c.Trillian.Plaintext, CAFile: c.Trillian.CA, ServerName: c.Trillian.ServerName,
	})
	if err != nil {
		return nil, nil, err
	}
	startCtx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	m, err := trillian.NewMirror(startCtx, trillian.MirrorConfig{
		Log: l, Client: tpb.NewTrillianLogClient(conn), TreeID: c.Trillian.TreeID,
		PollInterval: c.Trillian.PollInterval, AddWait: c.Trillian.AddWait, Publisher: pub, AdmissionKey: admissionKey, Logger: logger, Registerer: reg,
	})
	if err != nil {
		conn.Close()
		return nil, nil, fmt.Errorf("trillian tree %d at %s: %w", c.Trillian.TreeID, c.Trillian.Address, err)
	}
	runCtx, stopRun := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		// An error is logged by Run; the log serves what it has.
		m.Run(runCtx)
	}()
	return m, func() {
		stopRun()
		<-done
		conn.Close()
	}, nil
}

// newPublisher opens the tree's shared checkpoint record and returns the
// log's Witnessing on Trillian: it publishes through the record, the
// checkpoints coll got cosigned if there is a policy.
func newPublisher(ctx context.Context, c Config, verifier note.Verifier, coll *witnessing.Collector, logger *slog.Logger, reg prometheus.Registerer) (*trillian.Publisher, error) {
	openCtx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	rec, err := trillian.OpenRecord(openCtx, c.Trillian.Database, c.Trillian.TreeID, logger)
	if err != nil {
		return nil, fmt.Errorf("trillian.database: %w", err)
	}
	cfg := trillian.PublisherConfig{
		Record: rec, Verifier: verifier, PollInterval: c.Trillian.PollInterval, Wait: c.Trillian.AddWait,
		Logger: logger, Registerer: reg,
	}
	if coll != nil {
		cfg.Cosigner = coll
	}
	p, err := trillian.NewPublisher(cfg)
	if err != nil {
		rec.Close()
		return nil, err
	}
	return p, nil
}
