package cli

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
)

// Startup prints what a server says on stdout as it starts (its key, its
// address). In text format each is a line "NAME: TEXT" that operators and
// the integration tests read; in json format each is one JSON object, as
// the logs on stderr are, so that every line the server prints is JSON.
type Startup struct {
	name string
	w    io.Writer
	json *slog.Logger // nil in text format
}

// NewStartup returns the Startup of the server name writing to w in
// format "text" or "json".
func NewStartup(w io.Writer, name, format string) *Startup {
	s := &Startup{name: name, w: w}
	if format == "json" {
		s.json = slog.New(slog.NewJSONHandler(w, nil)).With("server", name)
	}
	return s
}

// Say prints one start-up line: in text format "NAME: " and text; in json
// format an info record with message msg and attributes attrs (key, value
// pairs as slog takes them).
func (s *Startup) Say(msg, text string, attrs ...any) {
	if s.json != nil {
		s.json.Info(msg, attrs...)
		return
	}
	fmt.Fprintf(s.w, "%s: %s\n", s.name, text)
}

// errLogged is matched by an error that LogExit marked as logged.
var errLogged = errors.New("logged")

// loggedError is an error the command has already logged.
type loggedError struct{ err error }

func (e loggedError) Error() string        { return e.err.Error() }
func (e loggedError) Unwrap() error        { return e.err }
func (e loggedError) Is(target error) bool { return target == errLogged }

// LogExit logs the error a server exits with on logger if the log format
// is json, and returns it marked so that Run does not print it again as
// text; in text format it returns err as it is, for Run to print.
func LogExit(logger *slog.Logger, format string, err error) error {
	if err == nil || format != "json" || errors.Is(err, errLogged) {
		return err
	}
	logger.Error("exiting", "error", err)
	return loggedError{err}
}
