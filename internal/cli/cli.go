// Package cli holds what Candor's commands share: reading a YAML config
// strictly and checking what the servers' configs have in common, building
// the slog logger, and serving HTTP until the context ends.
package cli

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"go.yaml.in/yaml/v3"
)

// DecodeYAMLFile decodes the YAML file at path into v, refusing keys that v
// does not have, so that a misspelt or unsupported setting is an error
// rather than silently ignored.
func DecodeYAMLFile(path string, v any) error {
	f, err := os.Open(path)
	if err != nil {
		return fmt.Errorf("couldn't read the config: %w", err)
	}
	defer f.Close()
	dec := yaml.NewDecoder(f)
	dec.KnownFields(true)
	if err := dec.Decode(v); err != nil {
		if err == io.EOF {
			return fmt.Errorf("couldn't parse %s: the file is empty", path)
		}
		return fmt.Errorf("couldn't parse %s: %w", path, err)
	}
	return nil
}

// Server is what the configurations of both servers have.
type Server struct {
	Data, Listen string
	// KeyName is the name of the server's key, set in the config field
	// KeyField.
	KeyField, KeyName   string
	LogLevel, LogFormat string
}

// Check checks s: the data directory and listen address are set, the key
// name is one a signed-note key can have, and the log level and format are
// known. It returns an error for each fault, naming the config field.
func (s Server) Check() []error {
	var errs []error
	if s.Data == "" {
		errs = append(errs, errors.New("data: a data directory is required (--data)"))
	}
	if s.Listen == "" {
		errs = append(errs, errors.New("listen: an address is required"))
	}
	if strings.ContainsAny(s.KeyName, "\n+ ") {
		errs = append(errs, fmt.Errorf("%s %q: must not contain spaces, '+' or newlines", s.KeyField, s.KeyName))
	}
	switch s.LogLevel {
	case "debug", "info", "warn", "error":
	default:
		errs = append(errs, fmt.Errorf("logLevel %q: want debug, info, warn or error", s.LogLevel))
	}
	switch s.LogFormat {
	case "text", "json":
	default:
		errs = append(errs, fmt.Errorf("logFormat %q: want text or json", s.LogFormat))
	}
	return errs
}

// NewLogger returns a logger writing to w at level (debug, info, warn or
// error; the caller has validated it) in format "json" or text.
func NewLogger(w io.Writer, level, format string) *slog.Logger {
	var l slog.Level
	l.UnmarshalText([]byte(level))
	opts := &slog.HandlerOptions{Level: l}
	if format == "json" {
		return slog.New(slog.NewJSONHandler(w, opts))
	}
	return slog.New(slog.NewTextHandler(w, opts))
}

// Serve serves h on ln until ctx ends, then shuts down gracefully, giving
// requests in flight up to 10 seconds.
func Serve(ctx context.Context, ln net.Listener, h http.Handler, logger *slog.Logger) error {
	srv := &http.Server{
		Handler:           h,
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       30 * time.Second,
		WriteTimeout:      60 * time.Second,
		IdleTimeout:       120 * time.Second,
		ErrorLog:          slog.NewLogLogger(logger.Handler(), slog.LevelWarn),
	}
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
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

// Command is what a command or subcommand runs: args are its arguments,
// stdout where it prints for the operator.
type Command func(ctx context.Context, args []string, stdout io.Writer) error

// Main runs the subcommand named by the first argument, if subs has it,
// else def with all the arguments, until SIGINT or SIGTERM. It exits 2 for
// a usage error (after -h), 1 with the error on stderr for any other.
func Main(name string, def Command, subs map[string]Command) {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	cmd, args := def, os.Args[1:]
	if len(args) > 0 && subs[args[0]] != nil {
		cmd, args = subs[args[0]], args[1:]
	}
	err := cmd(ctx, args, os.Stdout)
	stop()
	if errors.Is(err, flag.ErrHelp) {
		os.Exit(2)
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "%s: %v\n", name, err)
		os.Exit(1)
	}
}

// ParseConfig fills a command's configuration in order: the defaults
// already in it, then the YAML file named by --config, then the flags given
// in args. The flags of fs must be bound to the fields of *config (with
// its defaults as their defaults) and take one value each: after the file
// is read, args are parsed again so that the command line wins.
func ParseConfig(fs *flag.FlagSet, args []string, config any, configUsage string) error {
	var file string
	fs.StringVar(&file, "config", "", configUsage)
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected arguments: %q", fs.Args())
	}
	if file == "" {
		return nil
	}
	if err := DecodeYAMLFile(file, config); err != nil {
		return err
	}
	return fs.Parse(args)
}
