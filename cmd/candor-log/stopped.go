package main

import (
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"

	"github.com/candorlog/candor/storage/pebble"
)

// stoppedLogDB parses the arguments of "candor-log <name> --data DIR",
// the subcommands that work on a stopped log, and returns the log's
// database directory and a logger of warnings.
func stoppedLogDB(name string, args []string) (string, *slog.Logger, error) {
	fs := flag.NewFlagSet("candor-log "+name, flag.ContinueOnError)
	data := fs.String("data", "", "`directory` of the log (required; the log must be stopped)")
	if err := fs.Parse(args); err != nil {
		return "", nil, err
	}
	if *data == "" {
		return "", nil, fmt.Errorf("%s: --data is required", name)
	}
	if fs.NArg() > 0 {
		return "", nil, fmt.Errorf("%s: unexpected arguments %q", name, fs.Args())
	}
	dir := filepath.Join(*data, "db")
	if _, err := os.Stat(dir); err != nil {
		return "", nil, fmt.Errorf("%s: no log in %s: %w", name, *data, err)
	}
	return dir, slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn})), nil
}

// stopFirst says, of an open that failed because the log runs, to stop it.
func stopFirst(name string, err error) error {
	if errors.Is(err, pebble.ErrLocked) {
		return fmt.Errorf("%s: %w: stop the log first", name, err)
	}
	return err
}
