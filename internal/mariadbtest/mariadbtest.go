// Package mariadbtest starts a private MariaDB server for tests: its own
// data directory under the test's temporary directory, reached only by a
// Unix socket (no TCP port), stopped and removed when the test ends.
//
// The tests that need it skip, saying why, when MariaDB is not installed;
// under CI (CI set in the environment: .ci/run installs MariaDB) they fail.
package mariadbtest

import (
	"bytes"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/go-sql-driver/mysql"
)

// Server is a running MariaDB server.
type Server struct {
	// Socket is the path of its Unix socket.
	Socket string
	dir    string
	bin    string   // mariadbd
	args   []string // its arguments
	t      testing.TB

	mu     sync.Mutex
	cmd    *exec.Cmd
	exited chan struct{}
}

// DSN returns the go-sql-driver/mysql data source name of database db
// ("" for none) on the server, as root.
func (s *Server) DSN(db string) string {
	c := mysql.NewConfig()
	c.User = "root"
	c.Net = "unix"
	c.Addr = s.Socket
	c.DBName = db
	return c.FormatDSN()
}

// binaries returns the paths of mariadbd and mariadb-install-db, or why
// they are missing.
func binaries() (server, install string, err error) {
	look := func(names ...string) (string, error) {
		for _, n := range names {
			if p, err := exec.LookPath(n); err == nil {
				return p, nil
			}
			for _, dir := range []string{"/usr/sbin", "/usr/bin", "/usr/local/bin"} {
				if p := filepath.Join(dir, n); isExecutable(p) {
					return p, nil
				}
			}
		}
		return "", fmt.Errorf("none of %s is installed (Debian package mariadb-server)", strings.Join(names, ", "))
	}
	if server, err = look("mariadbd", "mysqld"); err != nil {
		return "", "", err
	}
	if install, err = look("mariadb-install-db", "mysql_install_db"); err != nil {
		return "", "", err
	}
	return server, install, nil
}

func isExecutable(p string) bool {
	fi, err := os.Stat(p)
	return err == nil && !fi.IsDir() && fi.Mode()&0o111 != 0
}

// Available returns nil if MariaDB is installed, else why not.
func Available() error {
	_, _, err := binaries()
	return err
}

// Start starts a server for the test, or skips the test when MariaDB is
// not installed (fails under CI).
func Start(t testing.TB) *Server {
	t.Helper()
	server, install, err := binaries()
	if err != nil {
		if os.Getenv("CI") != "" {
			t.Fatalf("MariaDB is missing (CI installs it: see .ci/run): %v", err)
		}
		t.Skipf("MariaDB is missing: %v", err)
	}
	// A short directory: a Unix socket's path is limited to about 100
	// bytes, and t.TempDir() holds the test's name.
	dir, err := os.MkdirTemp("", "candor-mariadb-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	data := filepath.Join(dir, "data")
	args := []string{"--no-defaults", "--datadir=" + data, "--auth-root-authentication-method=normal", "--skip-test-db"}
	if os.Geteuid() == 0 {
		args = append(args, "--user=root")
	}
	if out, err := exec.Command(install, args...).CombinedOutput(); err != nil {
		t.Fatalf("%s: %v\n%s", install, err, out)
	}
	s := &Server{Socket: filepath.Join(dir, "sock"), dir: dir, bin: server, t: t}
	s.args = []string{
		"--no-defaults", "--datadir=" + data, "--socket=" + s.Socket, "--skip-networking",
		"--pid-file=" + filepath.Join(dir, "pid"), "--log-error=" + filepath.Join(dir, "error.log"),
		"--innodb-buffer-pool-size=128M", "--skip-log-bin", "--max-connections=500",
		// Clients that open many connections at once (Trillian under
		// load) are queued, not refused.
		"--back-log=1000",
	}
	if os.Geteuid() == 0 {
		s.args = append(s.args, "--user=root")
	}
	s.start()
	t.Cleanup(s.stop)
	return s
}

// start starts the server on its data directory and waits until it
// answers.
func (s *Server) start() {
	s.t.Helper()
	s.mu.Lock()
	s.cmd, s.exited = exec.Command(s.bin, s.args...), make(chan struct{})
	cmd, exited := s.cmd, s.exited
	if err := cmd.Start(); err != nil {
		s.mu.Unlock()
		s.t.Fatalf("couldn't start %s: %v", s.bin, err)
	}
	s.mu.Unlock()
	go func() { cmd.Wait(); close(exited) }()
	if err := s.waitReady(30 * time.Second); err != nil {
		s.t.Fatalf("MariaDB did not start: %v\n%s", err, s.errorLog())
	}
}

// Kill kills the server with SIGKILL, as a crash or a power cut would.
func (s *Server) Kill() {
	s.mu.Lock()
	cmd, exited := s.cmd, s.exited
	s.mu.Unlock()
	cmd.Process.Kill()
	<-exited
}

// Restart starts the killed server again, on the same data and socket,
// and waits until it answers.
func (s *Server) Restart() { s.start() }

// waitReady waits until the server answers a ping.
func (s *Server) waitReady(timeout time.Duration) error {
	db, err := sql.Open("mysql", s.DSN(""))
	if err != nil {
		return err
	}
	defer db.Close()
	s.mu.Lock()
	exited := s.exited
	s.mu.Unlock()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	for {
		err := db.PingContext(ctx)
		if err == nil {
			return nil
		}
		select {
		case <-exited:
			return errors.New("the server exited")
		case <-ctx.Done():
			return err
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// errorLog returns the end of the server's error log.
func (s *Server) errorLog() string {
	b, _ := os.ReadFile(filepath.Join(s.dir, "error.log"))
	if len(b) > 4096 {
		b = b[len(b)-4096:]
	}
	return string(bytes.TrimSpace(b))
}

// stop stops the server: SIGTERM, then SIGKILL after 10 seconds.
func (s *Server) stop() {
	s.mu.Lock()
	cmd, exited := s.cmd, s.exited
	s.mu.Unlock()
	select {
	case <-exited:
		return
	default:
	}
	cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-exited:
	case <-time.After(10 * time.Second):
		cmd.Process.Kill()
		<-exited
	}
}
