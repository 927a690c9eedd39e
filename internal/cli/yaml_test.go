package cli

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

type testLog struct {
	Origin string        `yaml:"origin"`
	URL    string        `yaml:"url"`
	Every  time.Duration `yaml:"every"`
}

type testConfig struct {
	Name  string        `yaml:"name"`
	Count int           `yaml:"count"`
	Wait  time.Duration `yaml:"wait"`
	On    bool          `yaml:"on"`
	Logs  []testLog     `yaml:"logs"`
	Inner struct {
		Size int64 `yaml:"size"`
	} `yaml:"inner"`
}

func TestDecodeYAMLFile(t *testing.T) {
	dir := t.TempDir()
	write := func(name, text string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(text), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	var c testConfig
	good := "name: a\ncount: 3\nwait: 1m30s\non: true\nlogs:\n  - origin: o\n    url: http://x\n    every: 5s\ninner: {size: 7}\n"
	if err := DecodeYAMLFile(write("good.yaml", good), &c); err != nil {
		t.Fatal(err)
	}
	if c.Name != "a" || c.Count != 3 || c.Wait != 90*time.Second || !c.On || len(c.Logs) != 1 ||
		c.Logs[0] != (testLog{"o", "http://x", 5 * time.Second}) || c.Inner.Size != 7 {
		t.Fatalf("good file: %+v", c)
	}
	if err := DecodeYAMLFile(write("null.yaml", "name:\nlogs:\n"), &c); err != nil {
		t.Errorf("empty values: %v", err)
	}
	for _, tc := range []struct {
		name, text string
		want       []string // in the error
	}{
		{"unknown.yaml", "name: a\ncolor: red\n", []string{"line 2: color: unknown key (want name, count, wait, on, logs or inner)"}},
		{"unknown-nested.yaml", "logs:\n  - origin: o\n    ur1: http://x\n", []string{"line 3: logs[0].ur1: unknown key (want origin, url or every)"}},
		{"unknown-inner.yaml", "inner:\n  sise: 1\n", []string{"inner.sise: unknown key"}},
		{"empty.yaml", "", []string{"empty"}},
		{"type.yaml", "count: many\n", []string{`line 1: count: "many" is not a whole number`}},
		{"fraction.yaml", "count: 1.5\n", []string{`count: "1.5" is not a whole number`}},
		{"overflow.yaml", "inner: {size: 99999999999999999999}\n", []string{"inner.size", "whole number"}},
		{"duration.yaml", "logs:\n  - every: 5\n", []string{`line 2: logs[0].every: "5" is not a duration`, "10s"}},
		{"bool.yaml", "on: maybe\n", []string{`on: "maybe" is not true or false`}},
		{"list.yaml", "logs: {origin: o}\n", []string{"logs: want a list"}},
		{"mapping.yaml", "inner: 3\n", []string{"inner: want keys and values"}},
		{"two-docs.yaml", "name: a\n---\nname: b\n", []string{"line 2: a second YAML document"}},
		{"syntax.yaml", "name: [a\n", []string{"syntax.yaml"}},
	} {
		c := testConfig{Name: "kept"}
		err := DecodeYAMLFile(write(tc.name, tc.text), &c)
		if err == nil {
			t.Errorf("%s: decoded", tc.name)
			continue
		}
		for _, w := range append(tc.want, tc.name) {
			if !strings.Contains(err.Error(), w) {
				t.Errorf("%s: got error %v, want one saying %q", tc.name, err, w)
			}
		}
		if strings.Contains(err.Error(), "cli.") || strings.Contains(err.Error(), "time.Duration") {
			t.Errorf("%s: the error %q names Go types", tc.name, err)
		}
	}
	if err := DecodeYAMLFile(filepath.Join(dir, "missing.yaml"), &c); err == nil {
		t.Error("a missing file decoded")
	}
}
