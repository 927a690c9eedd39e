package main

import (
	"bytes"
	"context"
	"regexp"
	"strconv"
	"strings"
	"testing"

	tpb "github.com/google/trillian"

	"github.com/candorlog/candor/storage/trillian"
	"github.com/candorlog/candor/storage/trillian/trilliantest"
)

// TestTrillianInit creates a tree with candor-log trillian init on a real
// Trillian log server and checks it is there, an empty log.
func TestTrillianInit(t *testing.T) {
	env := trilliantest.Start(t, trilliantest.Options{})
	ctx := context.Background()
	var out bytes.Buffer
	if err := trillianCmd(ctx, []string{"init", "--trillian", env.Addr, "--plaintext", "--name", "ci-log"}, &out); err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile(`^created tree (\d+) \(ci-log\) on `).FindStringSubmatch(out.String())
	if m == nil {
		t.Fatalf("output %q", out.String())
	}
	id, _ := strconv.ParseInt(m[1], 10, 64)
	conn, err := trillian.Dial(trillian.Options{Address: env.Addr, Plaintext: true})
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	tree, err := tpb.NewTrillianAdminClient(conn).GetTree(ctx, &tpb.GetTreeRequest{TreeId: id})
	if err != nil {
		t.Fatal(err)
	}
	if tree.DisplayName != "ci-log" || tree.TreeType != tpb.TreeType_LOG {
		t.Errorf("tree %v", tree)
	}
	root, err := trillian.LatestRoot(ctx, tpb.NewTrillianLogClient(conn), id)
	if err != nil || root.TreeSize != 0 {
		t.Errorf("root %v, %v; want an empty tree", root, err)
	}
}

func TestTrillianInitUsage(t *testing.T) {
	ctx := context.Background()
	for _, tc := range []struct {
		args []string
		want string
	}{
		{nil, "usage"},
		{[]string{"create"}, "usage"},
		{[]string{"init"}, "--trillian is required"},
		{[]string{"init", "--trillian", "127.0.0.1:1", "extra"}, "unexpected arguments"},
		{[]string{"init", "--trillian", "127.0.0.1:1", "--plaintext", "--ca", "x.pem"}, "plaintext"},
		// Nothing listens: the deadline ends the wait.
		{[]string{"init", "--trillian", "127.0.0.1:1", "--plaintext", "--timeout", "200ms"}, "couldn't create the tree"},
	} {
		var out bytes.Buffer
		err := trillianCmd(ctx, tc.args, &out)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("trillian %q: %v, want an error saying %q", tc.args, err, tc.want)
		}
	}
}
