package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/candorlog/candor/storage/pebble"
)

// recompressBundles is "candor-log recompress-bundles --data DIR": it
// rewrites the bundle files of the stopped log in DIR with zstd
// (pebble.RecompressBundles), so that the bundles an older version
// compressed with S2 take a third less space and are served compressed.
func recompressBundles(ctx context.Context, args []string, stdout io.Writer) error {
	dir, logger, err := stoppedLogDB("recompress-bundles", args)
	if err != nil {
		return err
	}
	start := time.Now()
	last := start
	st, err := pebble.RecompressBundles(ctx, dir, pebble.Options{Logger: logger, LeafFilterBytes: -1}, func(done, total uint64) {
		if time.Since(last) > 5*time.Second {
			last = time.Now()
			fmt.Fprintf(stdout, "recompress-bundles: %d of %d bundles\n", done, total)
		}
	})
	if errors.Is(err, pebble.ErrLocked) {
		return stopFirst("recompress-bundles", err)
	}
	if err != nil {
		return fmt.Errorf("recompress-bundles: %w", err)
	}
	if st.Bundles == 0 {
		fmt.Fprintln(stdout, "recompress-bundles: ok: the log has no bundle files")
		return nil
	}
	fmt.Fprintf(stdout, "recompress-bundles: ok: %d bundles (%d recompressed), data file from %d to %d bytes, in %s\n",
		st.Bundles, st.Recompressed, st.Before, st.After, time.Since(start).Round(time.Millisecond))
	return nil
}
