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

	"github.com/candorlog/candor/internal/buildinfo"
)

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
	if err := CheckName(s.KeyField, s.KeyName); err != nil {
		errs = append(errs, err)
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

// CheckName checks the name of a key or the origin of a log, set in the
// config field field: one a signed-note key can have (no spaces, '+' or
// newlines) and schemeless, as c2sp.org/tlog-checkpoint origins are
// (log.example.com/candor, not https://log.example.com/candor).
func CheckName(field, name string) error {
	if strings.ContainsAny(name, "\n+ ") {
		return fmt.Errorf("%s %q: must not contain spaces, '+' or newlines", field, name)
	}
	if scheme, rest, ok := strings.Cut(name, "://"); ok {
		return fmt.Errorf("%s %q: must be schemeless (c2sp.org/tlog-checkpoint): drop %q, as in %q", field, name, scheme+"://", rest)
	}
	return nil
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

// Subcommand is a command run as "NAME SUBCOMMAND ARGS...".
type Subcommand struct {
	Name    string
	Summary string // one line, for --help
	Run     Command
}

// Main runs the command of Run with the process's arguments until SIGINT
// or SIGTERM, and exits with its code.
func Main(name string, def Command, subs ...Subcommand) {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := Run(ctx, name, def, subs, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

// Run runs the subcommand named by args[0], if subs has it, else def with
// all the arguments, and returns the exit code: 0, or 1 with the error on
// stderr. With -h or --help (the command's flags print their usage) it
// lists the subcommands and returns 0; with --version it prints the
// build (internal/buildinfo) on stdout and runs nothing.
func Run(ctx context.Context, name string, def Command, subs []Subcommand, args []string, stdout, stderr io.Writer) int {
	cmd, full := def, name
	if len(args) > 0 {
		for _, s := range subs {
			if s.Name == args[0] {
				cmd, full, args = s.Run, name+" "+s.Name, args[1:]
			}
		}
	}
	for _, a := range args {
		if a == "--" {
			break
		}
		if a == "-version" || a == "--version" {
			fmt.Fprintf(stdout, "%s %s\n", full, buildinfo.Read())
			return 0
		}
	}
	err := cmd(ctx, args, stdout)
	switch {
	case errors.Is(err, flag.ErrHelp):
		if full == name && len(subs) > 0 {
			fmt.Fprintf(stderr, "\nSubcommands (%s SUBCOMMAND -h for their flags):\n", name)
			for _, s := range subs {
				fmt.Fprintf(stderr, "  %-16s %s\n", s.Name, s.Summary)
			}
		}
		fmt.Fprintf(stderr, "\n%s --version prints the version.\n", full)
		return 0
	case errors.Is(err, errLogged):
		return 1
	case err != nil:
		fmt.Fprintf(stderr, "%s: %v\n", name, err)
		return 1
	}
	return 0
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

// durationValue is a flag.Value for a time.Duration whose error on a bad
// value says what a duration looks like.
type durationValue struct{ d *time.Duration }

func (v durationValue) String() string {
	if v.d == nil {
		return ""
	}
	return v.d.String()
}

func (v durationValue) Set(s string) error {
	d, err := time.ParseDuration(s)
	if err != nil {
		return errors.New("not a duration: want a number with a unit, such as 500ms, 10s, 5m or 1h30m")
	}
	*v.d = d
	return nil
}

// DurationVar defines a duration flag in fs, as fs.DurationVar does, with
// an error that says what a duration looks like.
func DurationVar(fs *flag.FlagSet, p *time.Duration, name string, value time.Duration, usage string) {
	*p = value
	fs.Var(durationValue{p}, name, usage)
}
