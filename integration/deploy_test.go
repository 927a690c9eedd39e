package integration

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"go.yaml.in/yaml/v3"
	"golang.org/x/mod/sumdb/note"

	"github.com/candorlog/candor/internal/mariadbtest"
	"github.com/candorlog/candor/storage/trillian"
	"github.com/candorlog/candor/storage/trillian/trilliantest"
)

// The monitoring the repository ships.
var (
	rulesFile     = filepath.Join(repoRoot, "deploy", "prometheus", "candor-rules.yml")
	dashboardFile = filepath.Join(repoRoot, "deploy", "grafana", "candor.json")
)

// requirePromtool returns promtool's path, or skips the test.
func requirePromtool(t *testing.T) string {
	t.Helper()
	p, err := exec.LookPath("promtool")
	if err != nil {
		t.Skip("promtool is not on PATH: install it (Debian: apt-get install prometheus; .ci/run does) to check the alerting rules")
	}
	return p
}

// ruleExprs returns the expressions of the alerting rules.
func ruleExprs(t *testing.T) []string {
	t.Helper()
	b, err := os.ReadFile(rulesFile)
	if err != nil {
		t.Fatal(err)
	}
	var rules struct {
		Groups []struct {
			Rules []struct {
				Alert, Expr string
			}
		}
	}
	if err := yaml.Unmarshal(b, &rules); err != nil {
		t.Fatalf("%s: %v", rulesFile, err)
	}
	var exprs []string
	for _, g := range rules.Groups {
		for _, r := range g.Rules {
			exprs = append(exprs, r.Expr)
		}
	}
	if len(exprs) == 0 {
		t.Fatalf("%s holds no rules", rulesFile)
	}
	return exprs
}

// dashboardExprs returns the queries of the dashboard's panels.
func dashboardExprs(t *testing.T) []string {
	t.Helper()
	b, err := os.ReadFile(dashboardFile)
	if err != nil {
		t.Fatal(err)
	}
	var d struct {
		Panels []struct {
			Title   string
			Targets []struct{ Expr string }
		}
	}
	if err := json.Unmarshal(b, &d); err != nil {
		t.Fatalf("%s: %v", dashboardFile, err)
	}
	var exprs []string
	for _, p := range d.Panels {
		for _, tg := range p.Targets {
			exprs = append(exprs, tg.Expr)
		}
	}
	if len(exprs) == 0 {
		t.Fatalf("%s holds no queries", dashboardFile)
	}
	return exprs
}

// TestAlertRulesAndDashboardCheck: promtool accepts the alerting rules, and
// every query of the dashboard (its Grafana variables replaced) as the
// expression of a rule.
func TestAlertRulesAndDashboardCheck(t *testing.T) {
	promtool := requirePromtool(t)
	if out, err := exec.Command(promtool, "check", "rules", rulesFile).CombinedOutput(); err != nil {
		t.Errorf("promtool check rules %s: %v\n%s", rulesFile, err, out)
	}
	grafana := strings.NewReplacer("$__rate_interval", "5m", "$instance", ".*")
	var b strings.Builder
	b.WriteString("groups:\n  - name: dashboard\n    rules:\n")
	for i, e := range dashboardExprs(t) {
		q, err := json.Marshal(grafana.Replace(e)) // a JSON string is a YAML string
		if err != nil {
			t.Fatal(err)
		}
		fmt.Fprintf(&b, "      - record: dashboard:query%d\n        expr: %s\n", i, q)
	}
	file := filepath.Join(t.TempDir(), "dashboard-rules.yml")
	if err := os.WriteFile(file, []byte(b.String()), 0o600); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command(promtool, "check", "rules", file).CombinedOutput(); err != nil {
		t.Errorf("the dashboard's queries do not parse: %v\n%s", err, out)
	}
}

var metricName = regexp.MustCompile(`\bcandor_[a-z0-9_]+`)

// TestDeployedMetricsExist: every metric the alerting rules and the
// dashboard name is in the /metrics of a log with a witness policy or of
// a witness (one in push mode with gossip, one polling the log), right
// after they start.
func TestDeployedMetricsExist(t *testing.T) {
	requireBinaries(t)
	witnessBin, err := buildOnce("github.com/candorlog/candor/cmd/candor-witness")
	if err != nil {
		t.Fatal(err)
	}
	const origin = "example.com/deployed-log"
	dir := t.TempDir()
	skey, vkey, err := note.GenerateKey(rand.Reader, origin)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Join(dir, "log"), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "log", "log.key"), []byte(skey+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	writeYAML := func(name, text string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(text), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	pushed, err := startWitnessServer(t, witnessBin, filepath.Join(dir, "w1"), "--name", "witness.example/w1", "--config",
		writeYAML("w1.yaml", fmt.Sprintf("gossip:\n  listen: 127.0.0.1:0\nlogs:\n  - origin: %s\n    key: %s\n", origin, vkey)))
	if err != nil {
		t.Fatal(err)
	}
	policy := writeYAML("policy.txt", fmt.Sprintf("log %s\nwitness w1 %s %s\nquorum w1\n", vkey, pushed.vkey, pushed.url))
	logSrv := mustStartServer(t, "candor-log", filepath.Join(dir, "log"), "--policy", policy)
	pulling, err := startWitnessServer(t, witnessBin, filepath.Join(dir, "w2"), "--name", "witness.example/w2", "--config",
		writeYAML("w2.yaml", fmt.Sprintf("logs:\n  - origin: %s\n    key: %s\n    url: %s\n", origin, vkey, logSrv.url)))
	if err != nil {
		t.Fatal(err)
	}

	ctx, cancel := context.WithTimeout(context.Background(), requestTimeout)
	defer cancel()
	exported := map[string]bool{}
	for _, s := range []struct{ url, path string }{{logSrv.url, "/checkpoint"}, {pushed.url, "/healthz"}, {pulling.url, "/healthz"}} {
		// One request first: histograms by handler have no series before it.
		if resp, err := logSrv.client.Get(s.url + s.path); err == nil {
			resp.Body.Close()
		}
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, s.url+"/metrics", nil)
		if err != nil {
			t.Fatal(err)
		}
		resp, err := logSrv.client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		body, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		if err != nil {
			t.Fatal(err)
		}
		for line := range strings.Lines(string(body)) {
			if strings.HasPrefix(line, "#") {
				continue
			}
			if i := strings.IndexAny(line, "{ "); i > 0 {
				exported[line[:i]] = true
			}
		}
	}
	// A front end on Trillian exports the metrics of its mirror.
	trillianNames := mariadbtest.Available() == nil || os.Getenv("CI") != ""
	if trillianNames {
		env := trilliantest.Start(t, trilliantest.Options{})
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		conn, err := trillian.Dial(trillian.Options{Address: env.Addr, Plaintext: true})
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		tree, err := trillian.CreateTree(ctx, conn, "deployed", "")
		if err != nil {
			t.Fatal(err)
		}
		fe := mustStartServer(t, "candor-log on Trillian", filepath.Join(dir, "front"), "--origin", origin, "--key", filepath.Join(dir, "log", "log.key"),
			"--storage", "trillian", "--trillian", env.Addr, "--trillian-tree", fmt.Sprint(tree.TreeId), "--trillian-db", env.DSN, "--trillian-plaintext")
		code, _, body, err := fe.do(ctx, http.MethodGet, "/metrics", nil, nil)
		if err != nil || code != http.StatusOK {
			t.Fatalf("GET /metrics of the front end on Trillian: %d %v", code, err)
		}
		for line := range strings.Lines(string(body)) {
			if i := strings.IndexAny(line, "{ "); i > 0 && !strings.HasPrefix(line, "#") {
				exported[line[:i]] = true
			}
		}
	} else {
		t.Log("MariaDB is missing: the metrics of a front end on Trillian are not checked")
	}
	if !exported["candor_build_info"] || !exported["candor_log_witness_lag_seconds"] || !exported["candor_witness_pull_total"] {
		t.Fatalf("the servers' /metrics lack metrics they export: %v", slices.Sorted(maps.Keys(exported)))
	}
	for file, exprs := range map[string][]string{rulesFile: ruleExprs(t), dashboardFile: dashboardExprs(t)} {
		for _, e := range exprs {
			for _, name := range metricName.FindAllString(e, -1) {
				if !trillianNames && strings.HasPrefix(name, "candor_log_trillian_") {
					continue
				}
				if !exported[name] {
					t.Errorf("%s names %s, which no server exports", file, name)
				}
			}
		}
	}
}
