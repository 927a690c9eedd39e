package main

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
)

// TestGrowth builds a log to two small sizes and measures the real
// candor-log and candor bench on it: one table row per size, every figure
// there, the log grown in place from the first size to the second.
func TestGrowth(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the binaries and runs servers")
	}
	bin := t.TempDir()
	// As make build builds them: without cgo, so that candor-log's
	// memory has a bound to check.
	build := exec.Command("go", "build", "-o", bin, "github.com/candorlog/candor/cmd/candor-log", "github.com/candorlog/candor/cmd/candor")
	build.Env = append(os.Environ(), "CGO_ENABLED=0")
	out, err := build.CombinedOutput()
	if err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	c, err := parseFlags([]string{"--sizes", "2K,5K", "--bin", bin, "--dir", t.TempDir(), "--submissions", "300", "--reads", "300"}, &bytes.Buffer{})
	if err != nil {
		t.Fatal(err)
	}
	var stdout, stderr bytes.Buffer
	if err := run(context.Background(), c, &stdout, &stderr); err != nil {
		t.Fatalf("%v\n%s", err, stderr.String())
	}
	// Two tables, a row for each size in each: every figure positive
	// (but the share of false positives, which may be none).
	speed := regexp.MustCompile(`(?m)^\s+([25]000)((?:\s+\S+){14})\s*$`).FindAllStringSubmatch(stdout.String(), -1)
	memory := regexp.MustCompile(`(?m)^\s+([25]000)((?:\s+\S+){13})\s*$`).FindAllStringSubmatch(stdout.String(), -1)
	if len(speed) != 2 || speed[0][1] != "2000" || speed[1][1] != "5000" || len(memory) != 2 || memory[0][1] != "2000" || memory[1][1] != "5000" {
		t.Fatalf("want a row for 2000 and one for 5000 in each table:\n%s", stdout.String())
	}
	check := func(rows [][]string, anything ...int) {
		for _, r := range rows {
			for i, f := range strings.Fields(r[2]) {
				n, err := strconv.ParseFloat(strings.TrimRight(f, "ms%"), 64)
				if !slices.Contains(anything, i) && (err != nil || n <= 0) {
					t.Errorf("size %s: column %d is %q:\n%s", r[1], i+1, f, stdout.String())
				}
			}
		}
	}
	check(speed)
	check(memory, 1, 12) // outside: only with cgo
	if !strings.Contains(stdout.String(), "Ed25519") || !strings.Contains(stderr.String(), "entries added") {
		t.Errorf("stdout:\n%s\nstderr:\n%s", stdout.String(), stderr.String())
	}
}

func TestParseFlags(t *testing.T) {
	c, err := parseFlags([]string{"--sizes", "500,10K,2M"}, &bytes.Buffer{})
	if err != nil || len(c.sizes) != 3 || c.sizes[0] != 500 || c.sizes[1] != 10_000 || c.sizes[2] != 2_000_000 {
		t.Fatalf("%v %v", c.sizes, err)
	}
	for _, tc := range []struct{ args, want string }{
		{"--sizes 10K,1K", "not larger"},
		{"--sizes 0", "positive"},
		{"--sizes 1G", "positive"},
		{"--payload zeros", "random, repeated or incompressible"},
		{"--reads 0", "positive"},
		{"extra", "unexpected arguments"},
	} {
		if _, err := parseFlags(strings.Fields(tc.args), &bytes.Buffer{}); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: %v, want %q", tc.args, err, tc.want)
		}
	}
}
