package main

import (
	"context"
	"encoding/base64"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"time"

	"github.com/candorlog/candor/api"
	apiclient "github.com/candorlog/candor/api/client"
)

// runSearch is "candor search --log URL [--commit X] [--repository X]
// [--digest X] [--key X] [--limit N]": it asks the log's GET /v1/search
// for the entries that carry every given term, follows the cursor page
// after page, and prints one line per hit: its index and its leaf hash
// (standard base64, as the API gives it). A refusal by the log exits
// non-zero with its reason.
func runSearch(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("candor search", flag.ContinueOnError)
	fs.SetOutput(stderr)
	logURL := fs.String("log", os.Getenv("CANDOR_LOG"), "the log's base `URL` (default $CANDOR_LOG)")
	var terms []api.SearchTerm
	for _, p := range api.SearchParams {
		fs.Func(p, fmt.Sprintf("find the entries with this %s (repeatable; every term must match)", p), func(v string) error {
			terms = append(terms, api.SearchTerm{Param: p, Value: v})
			return nil
		})
	}
	limit := fs.Int("limit", 0, "print at most `N` hits (default: all of them)")
	timeout := fs.Duration("timeout", 30*time.Second, "bound on each request")
	fs.Usage = func() {
		fmt.Fprintln(stderr, "usage: candor search --log URL [--commit ID] [--repository NAME] [--digest ALG:HEX] [--key FINGERPRINT] [--image sha256:HEX] [--identity SAN] [--issuer URL] [--limit N]\n\nPrints \"<index> <leaf hash>\" for every entry of the log's published tree\nthat carries all the given terms, in log order.")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected arguments %q", fs.Args())
	}
	if *logURL == "" || len(terms) == 0 || *limit < 0 {
		fs.Usage()
		return errUsage
	}
	c := apiclient.New(*logURL, &http.Client{Timeout: *timeout})
	printed := 0
	cursor := ""
	for {
		page := api.MaxSearchLimit
		if *limit > 0 {
			page = min(page, *limit-printed)
		}
		r, err := c.Search(ctx, terms, cursor, page)
		if err != nil {
			var se *apiclient.StatusError
			if errors.As(err, &se) && se.StatusCode >= 400 && se.StatusCode < 500 {
				return fmt.Errorf("refused by the log: %s", se.Message)
			}
			return err
		}
		for _, h := range r.Hits {
			if _, err := fmt.Fprintf(stdout, "%d %s\n", h.Index, base64.StdEncoding.EncodeToString(h.LeafHash)); err != nil {
				return err
			}
		}
		printed += len(r.Hits)
		if r.Cursor == "" || *limit > 0 && printed >= *limit {
			return nil
		}
		cursor = r.Cursor
	}
}
