package main

import (
	"crypto/rand"
	"flag"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"golang.org/x/mod/sumdb/note"

	"github.com/candorlog/candor/api"
	"github.com/candorlog/candor/witness"
)

func writeConfig(t *testing.T, yaml string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "witness.yaml")
	if err := os.WriteFile(path, []byte(yaml), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

func load(args ...string) (Config, error) {
	fs := flag.NewFlagSet("candor-witness", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	return loadConfig(fs, args)
}

const logKey = "example.com/log+0123abcd+AXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXX"

// peerKey is a cosignature/v1 verifier key.
const peerKey = "witness.example/peer+ec72b756+BKTN44340eSA63sNoxb19Tlc8xed5DJOdArGt3BJ1iDn"

func TestConfigFlagsOverrideYAML(t *testing.T) {
	path := writeConfig(t, `
name: witness.example/yaml
data: /yaml/data
listen: 127.0.0.1:1
logLevel: debug
logs:
  - origin: example.com/log
    key: `+logKey+`
`)
	c, err := load("--config", path, "--data", "/flag/data", "--listen", "127.0.0.1:2")
	if err != nil {
		t.Fatal(err)
	}
	if c.Name != "witness.example/yaml" || c.Data != "/flag/data" || c.Listen != "127.0.0.1:2" ||
		c.LogLevel != "debug" || c.LogFormat != "text" || c.Key != "/flag/data/witness.key" {
		t.Errorf("config %+v", c)
	}
	if len(c.Logs) != 1 || c.Logs[0].Origin != "example.com/log" || c.Logs[0].Key != logKey {
		t.Errorf("logs %+v", c.Logs)
	}
	c, err = load("--config", path, "--name", "witness.example/flag", "--key", "/k")
	if err != nil {
		t.Fatal(err)
	}
	if c.Name != "witness.example/flag" || c.Data != "/yaml/data" || c.Listen != "127.0.0.1:1" || c.Key != "/k" {
		t.Errorf("config %+v", c)
	}
}

func TestConfigRejects(t *testing.T) {
	log := "logs:\n  - origin: example.com/log\n    key: " + logKey + "\n"
	for _, tc := range []struct {
		name, yaml string
		args       []string
		want       string
	}{
		{"unknown top-level key", "gossipers: [a]\n" + log, nil, "gossipers"},
		{"unknown gossip key", "gossip: {peers: [a]}\n" + log, nil, "peers"},
		{"unknown peer key", "peers: [{name: a, key: b, url: c}]\n" + log, nil, "url"},
		{"peer without key", "peers: [{name: a}]\n" + log, nil, "name and key"},
		{"peer key not a cosignature key", "peers: [{name: example.com/log, key: " + logKey + "}]\n" + log, nil, "cosignature/v1"},
		{"peer key of another name", "peers: [{name: w2, key: " + peerKey + "}]\n" + log, nil, "not \"w2\""},
		{"peer twice", "peers: [{name: witness.example/peer, key: " + peerKey + "}, {name: witness.example/peer, key: " + peerKey + "}]\n" + log, nil, "twice"},
		{"gossip listen not host:port", "gossip: {listen: localhost}\n" + log, nil, "gossip.listen"},
		{"gossip listen bad port", "gossip: {listen: 'localhost:http'}\n" + log, nil, "port must be a number"},
		{"gossip join not host:port", "gossip: {listen: 'localhost:0', join: [a]}\n" + log, nil, "gossip.join[0]"},
		{"gossip join without listen", "gossip: {join: ['a:1']}\n" + log, nil, "need a listen"},
		{"gossip secret not base64", "gossip: {listen: 'localhost:0', secret: '%%%'}\n" + log, nil, "base64"},
		{"gossip secret too short", "gossip: {listen: 'localhost:0', secret: 'AAAA'}\n" + log, nil, "3 bytes, want 16, 24 or 32"},
		{"log url not http", log + "    url: ftp://log.example.com/\n", nil, "http or https"},
		{"log url relative", log + "    url: log.example.com/tiles\n", nil, "http or https"},
		{"log url with a query", log + "    url: https://log.example.com/?x=1\n", nil, "no query or fragment"},
		{"log pollInterval without url", log + "    pollInterval: 1s\n", nil, "needs a url"},
		{"log audit without url", log + "    audit: true\n", nil, "audit needs a url"},
		{"log pollInterval too short", log + "    url: https://log.example.com\n    pollInterval: 1ms\n", nil, "want between 100ms"},
		{"pollInterval not a duration", log + "pollInterval: 10\n", nil, `line 4: pollInterval: "10" is not a duration`},
		{"misspelt log key", log + "    ur1: https://log.example.com\n", nil, "logs[0].ur1: unknown key (want origin, key, url, pollInterval or audit)"},
		{"poll-interval flag without a unit", log, []string{"--data", "/d", "--poll-interval", "5"}, "a number with a unit, such as"},
		{"origin with a scheme", "logs:\n  - origin: https://log.example.com\n    key: " + logKey + "\n", nil, "schemeless"},
		{"name with a scheme", log, []string{"--data", "/d", "--name", "https://w.example.com"}, "schemeless"},
		{"second document", log + "---\nlogLevel: debug\n", nil, "a second YAML document"},
		{"pollInterval too long", log + "pollInterval: 48h\n", nil, "want between 100ms"},
		{"poll-interval flag too short", log, []string{"--data", "/d", "--poll-interval", "0s"}, "want between 100ms"},
		{"no logs", "", nil, "logs"},
		{"no data", log, []string{}, "data"},
		{"bad name", log, []string{"--name", "a b"}, "name"},
		{"log without key", "logs:\n  - origin: example.com/log\n", nil, "origin and key"},
		{"log twice", log + "  - origin: example.com/log\n    key: " + logKey + "\n", nil, "twice"},
		{"bad log level", log + "logLevel: loud\n", nil, "logLevel"},
		{"bad log format", log + "logFormat: xml\n", nil, "logFormat"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			args := tc.args
			if args == nil {
				args = []string{"--data", t.TempDir()}
			}
			_, err := load(append(args, "--config", writeConfig(t, tc.yaml))...)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("loadConfig = %v, want an error about %q", err, tc.want)
			}
		})
	}
	if _, err := load("--data", t.TempDir(), "extra"); err == nil {
		t.Error("loadConfig accepted a positional argument")
	}
}

func TestConfigPull(t *testing.T) {
	path := writeConfig(t, `
data: /data
pollInterval: 30s
logs:
  - origin: example.com/pushed
    key: `+logKey+`
  - origin: example.com/pulled
    key: `+logKey+`
    url: https://log.example.com/tiles/
  - origin: example.com/fast
    key: `+logKey+`
    url: http://127.0.0.1:8080
    pollInterval: 500ms
    audit: true
`)
	c, err := load("--config", path)
	if err != nil {
		t.Fatal(err)
	}
	if len(c.Logs) != 3 || c.Logs[0].Audit || c.Logs[1].Audit || !c.Logs[2].Audit {
		t.Errorf("the logs audited are %+v, want only example.com/fast", c.Logs)
	}
	want := []witness.Source{
		{Origin: "example.com/pulled", URL: "https://log.example.com/tiles/", Interval: 30 * time.Second},
		{Origin: "example.com/fast", URL: "http://127.0.0.1:8080", Interval: 500 * time.Millisecond},
	}
	if got := c.pullSources(); !slices.Equal(got, want) {
		t.Errorf("pullSources() = %+v, want %+v", got, want)
	}
	c, err = load("--config", path, "--poll-interval", "2m")
	if err != nil {
		t.Fatal(err)
	}
	if got := c.pullSources(); len(got) != 2 || got[0].Interval != 2*time.Minute || got[1].Interval != 500*time.Millisecond {
		t.Errorf("with --poll-interval 2m: pullSources() = %+v", got)
	}
	// The default.
	c, err = load("--data", "/data", "--config", writeConfig(t, "logs:\n  - origin: example.com/log\n    key: "+logKey+"\n    url: https://log.example.com\n"))
	if err != nil {
		t.Fatal(err)
	}
	if got := c.pullSources(); len(got) != 1 || got[0].Interval != 10*time.Second {
		t.Errorf("default interval: pullSources() = %+v, want 10s", got)
	}
}

func TestWitnessLogs(t *testing.T) {
	_, good, err := note.GenerateKey(rand.Reader, "example.com/log")
	if err != nil {
		t.Fatal(err)
	}
	_, cosignerKey, err := api.GenerateCosignerKey(rand.Reader, "example.com/log")
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		origin, key string
		ok          bool
	}{
		{"example.com/log", good, true},
		{"example.com/other", good, false},
		// A cosignature/v1 key must not pass for a log key.
		{"example.com/log", cosignerKey, false},
		{"example.com/log", "not a key", false},
	} {
		logs, err := Config{Logs: []LogConfig{{Origin: tc.origin, Key: tc.key, URL: "http://127.0.0.1:1", Audit: true}}}.witnessLogs()
		if (err == nil) != tc.ok {
			t.Errorf("witnessLogs(%q, %q) = %v, want ok=%v", tc.origin, tc.key, err, tc.ok)
		}
		if err == nil && (len(logs) != 1 || !logs[0].Audit || logs[0].URL == "") {
			t.Errorf("witnessLogs(%q, %q) = %+v, want the log audited from its url", tc.origin, tc.key, logs)
		}
	}
}

func TestConfigGossip(t *testing.T) {
	path := writeConfig(t, `
data: /data
gossip:
  listen: 127.0.0.1:7946
  join: [127.0.0.1:7947, "[::1]:7948"]
  secret: MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=
peers:
  - name: witness.example/peer
    key: `+peerKey+`
logs:
  - origin: example.com/log
    key: `+logKey+`
`)
	c, err := load("--config", path)
	if err != nil {
		t.Fatal(err)
	}
	secret, err := c.gossipSecret()
	if err != nil || string(secret) != "0123456789abcdef0123456789abcdef" {
		t.Errorf("secret %q, %v", secret, err)
	}
	vs, err := c.peerVerifiers()
	if err != nil || len(vs) != 1 || vs[0].Name() != "witness.example/peer" {
		t.Errorf("peers %v, %v", vs, err)
	}
	if len(c.Gossip.Join) != 2 || c.Gossip.Listen != "127.0.0.1:7946" {
		t.Errorf("gossip %+v", c.Gossip)
	}
}
