package client_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/candorlog/candor/api"
	"github.com/candorlog/candor/api/apitest"
	"github.com/candorlog/candor/api/client"
)

// TestScan checks that Scan checks every entry of a range once, reports
// the findings in log order with every index below its position checked,
// and stops at an entry bundle that does not hash into the tree.
func TestScan(t *testing.T) {
	key := newLogKey("example.com/scan")
	l := newCandorLog(t, key)
	l.add(t, entries("e", 0, 5000)...)
	f, c, _ := serveLog(t, l.handler)
	v := newVerifier(t, c, key, client.VerifierConfig{})
	ctx := context.Background()
	cp, err := v.Update(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range [][3]uint64{{0, 5000, 1}, {0, 5000, 7}, {100, 4200, 2}, {4999, 5000, 3}, {300, 300, 2}} {
		start, end, workers := r[0], r[1], int(r[2])
		var last uint64 = start
		var found []uint64
		err := v.Scan(ctx, cp, start, end, workers, func(e client.Entry) []client.Finding {
			if want := fmt.Sprintf("e-%d", e.Index); string(e.Data) != want {
				t.Errorf("entry %d is %q, want %q", e.Index, e.Data, want)
			}
			if e.Index%97 == 0 {
				return []client.Finding{{Index: e.Index, Rule: "every 97th"}}
			}
			return nil
		}, func(next uint64, findings []client.Finding) error {
			if next <= last && !(next == end && start == end) {
				t.Fatalf("position went from %d to %d", last, next)
			}
			for _, fd := range findings {
				if fd.Index < last || fd.Index >= next {
					t.Fatalf("finding of entry %d reported with the entries %d to %d", fd.Index, last, next)
				}
				found = append(found, fd.Index)
			}
			last = next
			return nil
		})
		if err != nil {
			t.Fatalf("Scan(%d, %d, %d workers): %v", start, end, workers, err)
		}
		if last != end {
			t.Fatalf("Scan(%d, %d) ended at %d", start, end, last)
		}
		var want []uint64
		for i := (start + 96) / 97 * 97; i < end; i += 97 {
			want = append(want, i)
		}
		if fmt.Sprint(found) != fmt.Sprint(want) {
			t.Fatalf("Scan(%d, %d) found %v, want %v", start, end, found, want)
		}
	}
	// An entry bundle with an entry altered stops the scan there, with
	// everything before it reported.
	f.set("/tile/entries/010", func(b []byte) []byte { return bytes.Replace(b, []byte("e-2600"), []byte("e-2601"), 1) })
	var reached uint64
	err = v.Scan(ctx, cp, 0, 5000, 2, nil, func(next uint64, _ []client.Finding) error {
		reached = next
		return nil
	})
	if !errors.Is(err, client.ErrEntryMismatch) || reached > 2560 {
		t.Fatalf("Scan over a tampered bundle: %v, reached %d; want ErrEntryMismatch before 2560", err, reached)
	}
	if err := v.Scan(ctx, cp, 0, cp.Size+1, 2, nil, func(uint64, []client.Finding) error { return nil }); err == nil {
		t.Fatal("Scan beyond the tree: no error")
	}
}

// TestWatch checks the rules of a watch list and what they match.
func TestWatch(t *testing.T) {
	b := apitest.NewBuildSignerFromSeed([]byte("watch build"))
	c := apitest.NewCommitSignerFromSeed([]byte("watch commit"))
	parse := func(sub []byte) api.Statement {
		t.Helper()
		entry, err := api.CanonicalEntry(sub)
		if err != nil {
			t.Fatal(err)
		}
		st, err := api.ParseEntry(entry)
		if err != nil {
			t.Fatal(err)
		}
		return st
	}
	digest := strings.Repeat("0f", 32)
	build := parse(b.Submission("a.tar.gz", digest))
	commit := parse(c.Submission("https://example.com/r.git", "change\n"))
	w, err := client.ParseWatch(strings.NewReader(fmt.Sprintf(`# keys
key %s
key %s
digest sha256:%s
repository https://example.com/r.git
author TEST@candor.invalid
image sha256:%s
identity builder@example.com
`, strings.ToUpper(b.KeyFingerprint()[:1])+b.KeyFingerprint()[1:], c.KeyFingerprint(), strings.ToUpper(digest), digest)))
	if err != nil {
		t.Fatal(err)
	}
	if w.Len() != 7 {
		t.Fatalf("%d rules, want 7", w.Len())
	}
	if got := fmt.Sprint(w.Match(build)); got != fmt.Sprintf("[key %s digest sha256:%s]", b.KeyFingerprint(), digest) {
		t.Errorf("the build matches %s", got)
	}
	if got := fmt.Sprint(w.Match(commit)); got != fmt.Sprintf("[key %s repository https://example.com/r.git author test@candor.invalid]", c.KeyFingerprint()) {
		t.Errorf("the commit matches %s", got)
	}
	// An image signature under a certificate matches by its manifest
	// digest (as an image and as a digest) and its identity.
	image := parse(apitest.NewImageSignerWithCertificate("builder@example.com", "https://issuer.example.com").Submission("registry.example.com/app", "sha256:"+digest))
	if got := fmt.Sprint(w.Match(image)); got != fmt.Sprintf("[digest sha256:%s image sha256:%s identity builder@example.com]", digest, digest) {
		t.Errorf("the image signature matches %s", got)
	}
	var none *client.Watch
	if none.Match(build) != nil || none.Len() != 0 {
		t.Error("a nil watch list matches")
	}
	for _, bad := range []string{"colour blue", "key", "key not-a-key", "digest nodigest", "image sha256:12", "author nobody", "commit " + strings.Repeat("a", 40)} {
		if _, err := client.ParseWatch(strings.NewReader("# ok\n" + bad + "\n")); err == nil || !strings.Contains(err.Error(), "line 2") {
			t.Errorf("watch rule %q: %v, want an error naming line 2", bad, err)
		}
	}
}
