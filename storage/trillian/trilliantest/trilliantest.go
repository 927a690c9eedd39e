// Package trilliantest runs Trillian's real log server and log signer,
// from the Trillian module's own packages, in the test's process, on a
// private MariaDB (internal/mariadbtest) loaded with Trillian's schema
// from the module. The gRPC server listens on loopback.
package trilliantest

import (
	"context"
	"database/sql"
	"flag"
	"io"
	"net"
	"sync"
	"testing"
	"time"

	tpb "github.com/google/trillian"
	"github.com/google/trillian/extension"
	tlog "github.com/google/trillian/log"
	"github.com/google/trillian/quota"
	"github.com/google/trillian/server"
	"github.com/google/trillian/server/admin"
	"github.com/google/trillian/server/interceptor"
	"github.com/google/trillian/storage/mysql"
	"github.com/google/trillian/storage/testdb"
	"github.com/google/trillian/util/clock"
	"google.golang.org/grpc"
	"k8s.io/klog/v2"

	"github.com/candorlog/candor/internal/mariadbtest"
)

// Env is a Trillian log server and log signer on one database.
type Env struct {
	// Addr is the gRPC address of the log and admin servers.
	Addr string
	// DSN is the go-sql-driver/mysql data source name of Trillian's
	// database, which also holds the front ends' checkpoint record.
	DSN string
	// MariaDB is the database server, which a test may kill and restart.
	MariaDB *mariadbtest.Server
}

// Options are the signer's settings; zero values take trillian_log_signer's
// defaults.
type Options struct {
	// SequencerInterval is how often the signer integrates queued leaves
	// (default 100ms).
	SequencerInterval time.Duration
	// BatchSize is the most leaves it integrates at once (default 1000).
	BatchSize int
}

var quietKlog sync.Once

// withDefaults returns o with trillian_log_signer's defaults where unset.
func (o Options) withDefaults() Options {
	if o.SequencerInterval == 0 {
		o.SequencerInterval = 100 * time.Millisecond
	}
	if o.BatchSize == 0 {
		o.BatchSize = 1000
	}
	return o
}

// database starts MariaDB and creates a database of a new name in it with
// Trillian's schema from the module (testdb does both), until the test
// ends.
// It returns the database, its server and its data source name.
func database(t testing.TB) (*sql.DB, *mariadbtest.Server, string) {
	t.Helper()
	maria := mariadbtest.Start(t)
	t.Setenv(testdb.MySQLURIEnv, maria.DSN("")) // ends with "/"
	db, done, err := testdb.NewTrillianDB(context.Background(), testdb.DriverMySQL)
	if err != nil {
		t.Fatalf("couldn't create Trillian's database: %v", err)
	}
	t.Cleanup(func() { done(context.Background()) })
	var name string
	if err := db.QueryRowContext(context.Background(), "SELECT DATABASE()").Scan(&name); err != nil {
		t.Fatal(err)
	}
	return db, maria, maria.DSN(name)
}

// Start starts MariaDB, creates Trillian's database in it, and runs a log
// server and a log signer on it until the test ends. It skips the test
// where MariaDB is not installed (fails under CI).
func Start(t testing.TB, o Options) *Env {
	t.Helper()
	o = o.withDefaults()
	quietKlog.Do(func() {
		// Trillian logs with klog, to stderr by default: not in the
		// tests' output (its errors at shutdown are expected).
		fs := flag.NewFlagSet("klog", flag.ContinueOnError)
		klog.InitFlags(fs)
		fs.Set("logtostderr", "false")
		fs.Set("stderrthreshold", "FATAL")
		klog.SetOutput(io.Discard)
	})
	db, maria, dsn := database(t)
	ctx := context.Background()
	registry := extension.Registry{
		AdminStorage: mysql.NewAdminStorage(db),
		LogStorage:   mysql.NewLogStorage(db, nil),
		QuotaManager: quota.Noop(),
	}
	srv := grpc.NewServer(grpc.UnaryInterceptor(interceptor.ErrorWrapper))
	tpb.RegisterTrillianAdminServer(srv, admin.New(registry, nil))
	tpb.RegisterTrillianLogServer(srv, server.NewTrillianLogRPCServer(registry, clock.System))
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	signerCtx, cancel := context.WithCancel(ctx)
	signer := tlog.NewOperationManager(tlog.OperationInfo{
		Registry:    registry,
		BatchSize:   o.BatchSize,
		NumWorkers:  1,
		RunInterval: o.SequencerInterval,
		TimeSource:  clock.System,
	}, tlog.NewSequencerManager(registry, 0))
	var wg sync.WaitGroup
	wg.Go(func() { signer.OperationLoop(signerCtx) })
	wg.Go(func() { srv.Serve(lis) })
	t.Cleanup(func() {
		cancel()
		srv.Stop()
		wg.Wait()
	})
	return &Env{Addr: lis.Addr().String(), DSN: dsn, MariaDB: maria}
}
