package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"flag"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/mod/sumdb/note"

	"github.com/candorlog/candor/api"
)

func load(args ...string) (Config, error) {
	fs := flag.NewFlagSet("candor-log", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	return loadConfig(fs, args)
}

func TestConfigWitnessPolicy(t *testing.T) {
	c, err := load("--data", "/d")
	if err != nil {
		t.Fatal(err)
	}
	if c.Policy != "" || c.WitnessWait != 5*time.Second || c.WitnessTimeout != 10*time.Second || c.WitnessRetryMax != 10*time.Second {
		t.Errorf("defaults: %+v", c)
	}
	path := filepath.Join(t.TempDir(), "log.yaml")
	yaml := "data: /d\npolicy: /yaml/policy\nwitnessWait: 2s\nwitnessTimeout: 3s\nwitnessRetryMax: 4s\n"
	if err := os.WriteFile(path, []byte(yaml), 0o600); err != nil {
		t.Fatal(err)
	}
	c, err = load("--config", path, "--policy", "/flag/policy", "--witness-wait", "0s")
	if err != nil {
		t.Fatal(err)
	}
	if c.Policy != "/flag/policy" || c.WitnessWait != 0 || c.WitnessTimeout != 3*time.Second || c.WitnessRetryMax != 4*time.Second {
		t.Errorf("YAML and flags: %+v", c)
	}
	for _, args := range [][]string{
		{"--witness-wait", "-1s"},
		{"--witness-timeout", "1ms"},
		{"--witness-retry-max", "2h"},
	} {
		if _, err := load(append([]string{"--data", "/d"}, args...)...); err == nil {
			t.Errorf("%v accepted", args)
		}
	}
}

// TestServeRefusesBadPolicy: a policy that can't be read, parsed or
// satisfied stops the log before it serves.
func TestServeRefusesBadPolicy(t *testing.T) {
	_, wkey, err := api.GenerateCosignerKey(rand.Reader, "w.test/witness")
	if err != nil {
		t.Fatal(err)
	}
	_, otherLog, err := note.GenerateKey(rand.Reader, "other.test/log")
	if err != nil {
		t.Fatal(err)
	}
	for name, policy := range map[string]string{
		"missing":            "",
		"malformed":          "quorum\n",
		"no url":             "witness w " + wkey + "\nquorum w\n",
		"quorum none":        "witness w " + wkey + " http://127.0.0.1:1\nquorum none\n",
		"not this log":       "log " + otherLog + "\nwitness w " + wkey + " http://127.0.0.1:1\nquorum w\n",
		"unknown group":      "witness w " + wkey + " http://127.0.0.1:1\nquorum g\n",
		"url without scheme": "witness w " + wkey + " 127.0.0.1:1\nquorum w\n",
		"url with a query":   "witness w " + wkey + " https://w.test/?a=b\nquorum w\n",
	} {
		dir := t.TempDir()
		file := filepath.Join(dir, "policy.txt")
		if policy != "" {
			if err := os.WriteFile(file, []byte(policy), 0o600); err != nil {
				t.Fatal(err)
			}
		}
		var out bytes.Buffer
		err := serve(context.Background(), []string{"--data", filepath.Join(dir, "data"), "--origin", "log.test/log", "--listen", "127.0.0.1:0", "--policy", file, "--log-level", "error"}, &out)
		if err == nil || !strings.Contains(err.Error(), "polic") {
			t.Errorf("%s policy: serve returned %v, want an error about the policy", name, err)
		}
		if strings.Contains(out.String(), "listening") {
			t.Errorf("%s policy: the log listened", name)
		}
	}
}

// TestConfigRejects: each mistake a newcomer made is refused with an error
// naming the YAML key or flag and saying what is wanted.
func TestConfigRejects(t *testing.T) {
	for _, tc := range []struct {
		name, yaml string
		args       []string
		want       string
	}{
		{"origin with a scheme", "origin: https://log.example.com\n", nil, "must be schemeless"},
		{"origin flag with a scheme", "", []string{"--origin", "http://log.example.com/candor"}, `as in "log.example.com/candor"`},
		{"absurd cache", "cacheMiB: 99999999999\n", nil, "cacheMiB 99999999999: want between 1 and 1048576"},
		{"absurd batch", "maxBatchSize: 999999999\n", nil, "maxBatchSize"},
		{"absurd pending", "", []string{"--max-pending", "999999999"}, "maxPending"},
		{"absurd in-flight", "maxInFlight: 999999999\n", nil, "maxInFlight"},
		{"absurd body", "maxBodyBytes: 99999999999\n", nil, "maxBodyBytes"},
		{"misspelt key", "policy: p\nwitnesWait: 1s\n", nil, "line 2: witnesWait: unknown key"},
		{"duration without a unit", "witnessWait: 5\n", nil, `witnessWait: "5" is not a duration`},
		{"duration flag without a unit", "", []string{"--witness-wait", "5"}, "a number with a unit, such as 500ms"},
		{"fraction", "maxPending: 1.5\n", nil, `maxPending: "1.5" is not a whole number`},
		{"second document", "listen: localhost:1\n---\nlisten: localhost:2\n", nil, "a second YAML document"},
		{"unknown storage", "storage: mysql\n", nil, `storage "mysql": want pebble or trillian`},
		{"trillian without address", "storage: trillian\ntrillian:\n  treeID: 7\n", nil, "trillian.address: required"},
		{"trillian without tree", "", []string{"--storage", "trillian", "--trillian", "t:8090"}, "trillian.treeID: required"},
		{"trillian without database", "", []string{"--storage", "trillian", "--trillian", "t:8090", "--trillian-tree", "7"}, "trillian.database: required"},
		{"trillian on pebble", "trillian:\n  address: t:8090\n", nil, "add storage: trillian"},
		{"trillian database on pebble", "", []string{"--trillian-db", "u@tcp(db:3306)/trillian"}, "add storage: trillian"},
		{"trillian plaintext with a CA", "", []string{"--storage", "trillian", "--trillian", "t:8090", "--trillian-tree", "7", "--trillian-plaintext", "--trillian-ca", "ca.pem"}, "takes no ca"},
		{"trillian misspelt", "storage: trillian\ntrillian:\n  adress: t:8090\n", nil, "adress: unknown key"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			args := append([]string{"--data", "/d"}, tc.args...)
			if tc.yaml != "" {
				path := filepath.Join(t.TempDir(), "log.yaml")
				if err := os.WriteFile(path, []byte(tc.yaml), 0o600); err != nil {
					t.Fatal(err)
				}
				args = append(args, "--config", path)
			}
			_, err := load(args...)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("loadConfig = %v, want an error saying %q", err, tc.want)
			}
		})
	}
}

// TestServeRefusesBadTrustedRoot: a trusted root that is missing or is not
// a Sigstore trusted root with a certificate authority refuses the start.
func TestServeRefusesBadTrustedRoot(t *testing.T) {
	for name, root := range map[string]string{
		"missing":                  "",
		"not JSON":                 "trusted",
		"another media type":       `{"mediaType":"application/json"}`,
		"no certificate authority": `{"mediaType":"application/vnd.dev.sigstore.trustedroot+json;version=0.1"}`,
	} {
		dir := t.TempDir()
		file := filepath.Join(dir, "trusted_root.json")
		if root != "" {
			if err := os.WriteFile(file, []byte(root), 0o600); err != nil {
				t.Fatal(err)
			}
		}
		var out bytes.Buffer
		err := serve(context.Background(), []string{"--data", filepath.Join(dir, "data"), "--origin", "log.test/log", "--listen", "127.0.0.1:0", "--trusted-root", file, "--log-level", "error"}, &out)
		if err == nil || !strings.Contains(err.Error(), "trustedRoot") {
			t.Errorf("%s trusted root: serve returned %v, want an error about trustedRoot", name, err)
		}
		if strings.Contains(out.String(), "listening") {
			t.Errorf("%s trusted root: the log listened", name)
		}
	}
}

// TestConfigTrillian: the trillian section of the YAML file, and the flags
// over it.
func TestConfigTrillian(t *testing.T) {
	path := filepath.Join(t.TempDir(), "log.yaml")
	yaml := "storage: trillian\ntrillian:\n  address: trillian.internal:8090\n  treeID: 42\n  database: candor:pw@tcp(db.internal:3306)/trillian\n  ca: ca.pem\n  serverName: trillian\n  pollInterval: 2s\n"
	if err := os.WriteFile(path, []byte(yaml), 0o600); err != nil {
		t.Fatal(err)
	}
	c, err := load("--data", "/d", "--config", path, "--trillian-add-wait", "5s")
	if err != nil {
		t.Fatal(err)
	}
	want := TrillianConfig{Address: "trillian.internal:8090", TreeID: 42, Database: "candor:pw@tcp(db.internal:3306)/trillian", CA: "ca.pem", ServerName: "trillian", PollInterval: 2 * time.Second, AddWait: 5 * time.Second}
	if c.Storage != "trillian" || c.Trillian != want {
		t.Errorf("storage %q, trillian %+v; want %+v", c.Storage, c.Trillian, want)
	}
}

// TestConfigFlatFiles checks the switches of the tile and bundle files:
// on by default, off from the file or a flag, a flag over the file.
func TestConfigFlatFiles(t *testing.T) {
	for _, sw := range []struct {
		key, flag string
		get       func(Config) bool
	}{
		{"tileFiles", "tile-files", func(c Config) bool { return c.TileFiles }},
		{"bundleFiles", "bundle-files", func(c Config) bool { return c.BundleFiles }},
	} {
		path := filepath.Join(t.TempDir(), "log.yaml")
		if err := os.WriteFile(path, []byte(sw.key+": false\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		for _, tc := range []struct {
			args []string
			want bool
		}{
			{[]string{"--data", "/d"}, true},
			{[]string{"--data", "/d", "--config", path}, false},
			{[]string{"--data", "/d", "--" + sw.flag + "=false"}, false},
			{[]string{"--data", "/d", "--config", path, "--" + sw.flag}, true},
		} {
			c, err := load(tc.args...)
			if err != nil {
				t.Fatal(err)
			}
			if got := sw.get(c); got != tc.want {
				t.Errorf("%q: %s %v, want %v", tc.args, sw.key, got, tc.want)
			}
		}
	}
}
