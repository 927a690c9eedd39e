package trilliantest

import (
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// Cluster is Trillian as it is deployed: trillian_log_server and
// trillian_log_signer processes, built from the Trillian module this
// repository uses, on a private MariaDB. The test can kill either with
// SIGKILL and start it again.
type Cluster struct {
	// Addr is the log server's gRPC address.
	Addr string
	// DSN is the go-sql-driver/mysql data source name of Trillian's
	// database, which also holds the front ends' checkpoint record.
	DSN  string
	t    testing.TB
	bins string
	o    Options

	mu     sync.Mutex
	server *exec.Cmd
	signer *exec.Cmd
	hport  int // the ports of the server's HTTP and the signer's, kept across restarts
	sport  int
	shport int
}

var (
	buildMu  sync.Mutex
	buildDir string
)

// trillianVersion returns the version of the Trillian module go.mod
// names (the tests run in the module's directory).
func trillianVersion() (string, error) {
	out, err := exec.Command("go", "list", "-m", "-f", "{{.Version}}", "github.com/google/trillian").Output()
	if err != nil {
		return "", fmt.Errorf("couldn't find the Trillian module's version: %w", err)
	}
	v := strings.TrimSpace(string(out))
	if v == "" {
		return "", fmt.Errorf("the Trillian module has no version (replaced?): build its servers by hand")
	}
	return v, nil
}

// binaries builds trillian_log_server and trillian_log_signer, once per
// machine and version, into the user's cache directory (go install of the
// module at the version go.mod names), and returns their directory.
func binaries(t testing.TB) string {
	t.Helper()
	buildMu.Lock()
	defer buildMu.Unlock()
	if buildDir != "" {
		return buildDir
	}
	version, err := trillianVersion()
	if err != nil {
		t.Fatal(err)
	}
	cache, err := os.UserCacheDir()
	if err != nil {
		cache = os.TempDir()
	}
	dir := filepath.Join(cache, "candor-test", "trillian-"+version)
	have := true
	for _, b := range []string{"trillian_log_server", "trillian_log_signer"} {
		if _, err := os.Stat(filepath.Join(dir, b)); err != nil {
			have = false
		}
	}
	if !have {
		start := time.Now()
		cmd := exec.Command("go", "install",
			"github.com/google/trillian/cmd/trillian_log_server@"+version,
			"github.com/google/trillian/cmd/trillian_log_signer@"+version)
		cmd.Env = append(os.Environ(), "GOBIN="+dir, "GOFLAGS=")
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("couldn't build Trillian %s's servers: %v\n%s", version, err, out)
		}
		t.Logf("built Trillian %s's log server and signer in %s", version, time.Since(start).Round(time.Second))
	}
	buildDir = dir
	return dir
}

// freePort returns a TCP port free on 127.0.0.1 now.
func freePort(t testing.TB) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// StartCluster starts MariaDB with Trillian's schema, a log server and a
// log signer, until the test ends. It skips the test where MariaDB is not
// installed (fails under CI).
func StartCluster(t testing.TB, o Options) *Cluster {
	t.Helper()
	o = o.withDefaults()
	// MariaDB first: without it the test skips, and builds nothing.
	_, _, dsn := database(t)
	bins := binaries(t)
	c := &Cluster{
		Addr: net.JoinHostPort("127.0.0.1", strconv.Itoa(freePort(t))),
		DSN:  dsn,
		t:    t, bins: bins, o: o,
		hport: freePort(t), sport: freePort(t), shport: freePort(t),
	}
	c.StartServer()
	c.StartSigner()
	t.Cleanup(func() {
		c.mu.Lock()
		defer c.mu.Unlock()
		for _, cmd := range []*exec.Cmd{c.signer, c.server} {
			if cmd != nil {
				cmd.Process.Kill()
				cmd.Wait()
			}
		}
	})
	return c
}

// StartServer starts the log server on its address, if it is not
// running, and waits until it listens.
func (c *Cluster) StartServer() {
	c.mu.Lock()
	if c.server == nil {
		c.server = c.run("trillian_log_server", "--rpc_endpoint="+c.Addr, "--http_endpoint=127.0.0.1:"+strconv.Itoa(c.hport))
	}
	c.mu.Unlock()
	deadline := time.Now().Add(30 * time.Second)
	for {
		conn, err := net.DialTimeout("tcp", c.Addr, time.Second)
		if err == nil {
			conn.Close()
			return
		}
		if time.Now().After(deadline) {
			c.t.Fatalf("trillian_log_server did not listen on %s", c.Addr)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// KillServer kills the log server with SIGKILL.
func (c *Cluster) KillServer() {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.server == nil {
		return
	}
	c.server.Process.Signal(syscall.SIGKILL)
	c.server.Wait()
	c.server = nil
}

// run starts one of the binaries on the cluster's database.
func (c *Cluster) run(bin string, args ...string) *exec.Cmd {
	args = append([]string{"--storage_system=mysql", "--quota_system=mysql", "--mysql_uri=" + c.DSN, "--logtostderr"}, args...)
	cmd := exec.Command(filepath.Join(c.bins, bin), args...)
	if err := cmd.Start(); err != nil {
		c.t.Fatalf("couldn't start %s: %v", bin, err)
	}
	return cmd
}

// StartSigner starts the log signer, if it is not running.
func (c *Cluster) StartSigner() {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.signer != nil {
		return
	}
	c.signer = c.run("trillian_log_signer", "--force_master",
		"--sequencer_interval="+c.o.SequencerInterval.String(), "--batch_size="+strconv.Itoa(c.o.BatchSize),
		"--rpc_endpoint=127.0.0.1:"+strconv.Itoa(c.sport), "--http_endpoint=127.0.0.1:"+strconv.Itoa(c.shport))
}

// KillSigner kills the log signer with SIGKILL.
func (c *Cluster) KillSigner() {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.signer == nil {
		return
	}
	c.signer.Process.Signal(syscall.SIGKILL)
	c.signer.Wait()
	c.signer = nil
}
