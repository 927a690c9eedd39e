package trillian

import (
	"bytes"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"log/slog"

	"github.com/go-sql-driver/mysql"
)

// The shared checkpoint record.
//
// Several front ends publish checkpoints of one tree. Each publishes a
// checkpoint only once it is in one record, a row of the database Trillian
// keeps its tree in, replaced by compare-and-swap: a front end reads the
// row, checks that its checkpoint is larger and consistent with the one
// there (so with every one published before), and replaces the row only if
// nobody replaced it meanwhile. A front end that finds a larger checkpoint
// there publishes that one (once its mirror has the tree, and checked
// against it). So the checkpoints the front ends publish only grow, are
// all consistent, and a client reading front end A and then B never goes
// back.

// recordTable is the table of the record: one row per tree.
const recordTable = "CandorCheckpoint"

// createRecordTable is the SQL that creates it. A front end runs it when it
// starts; an operator whose database user may not create tables runs it
// once (README).
const createRecordTable = `CREATE TABLE IF NOT EXISTS ` + recordTable + ` (
  TreeId BIGINT NOT NULL PRIMARY KEY,
  Size BIGINT UNSIGNED NOT NULL,
  Note MEDIUMBLOB NOT NULL
)`

// maxRecordNote bounds the note a front end stores or reads: a checkpoint
// with its signature lines.
const maxRecordNote = 1 << 20

// Record is the shared checkpoint record of one tree in a MySQL or MariaDB
// database.
type Record struct {
	db     *sql.DB
	treeID int64
}

// OpenRecord connects to the database of dsn (go-sql-driver/mysql's form,
// as Trillian's --mysql_uri: user:password@tcp(host:3306)/trillian), creates
// the record's table if it is not there, and returns the record of tree
// treeID. The driver's own messages go to logger (nil: slog.Default()) at
// debug level: the errors they tell of reach the caller.
func OpenRecord(ctx context.Context, dsn string, treeID int64, logger *slog.Logger) (*Record, error) {
	cfg, err := mysql.ParseDSN(dsn)
	if err != nil {
		return nil, fmt.Errorf("the checkpoint database: %w", err)
	}
	if logger == nil {
		logger = slog.Default()
	}
	cfg.Logger = driverLogger{logger}
	if cfg.DBName == "" {
		return nil, errors.New("the checkpoint database: the data source name names no database (user:password@tcp(host:3306)/trillian)")
	}
	conn, err := mysql.NewConnector(cfg)
	if err != nil {
		return nil, fmt.Errorf("the checkpoint database: %w", err)
	}
	db := sql.OpenDB(conn)
	db.SetMaxOpenConns(4)
	if _, err := db.ExecContext(ctx, createRecordTable); err != nil {
		// A user without the right to create tables, on a table that is
		// there, goes on.
		if _, serr := db.ExecContext(ctx, "SELECT TreeId, Size, Note FROM "+recordTable+" LIMIT 0"); serr != nil {
			db.Close()
			return nil, fmt.Errorf("couldn't create the checkpoint table %s in database %s (create it as the README says): %w", recordTable, cfg.DBName, err)
		}
	}
	return &Record{db: db, treeID: treeID}, nil
}

// Close closes the database connections.
func (r *Record) Close() error { return r.db.Close() }

// Load returns the note in the record, or nil if nothing was published yet.
func (r *Record) Load(ctx context.Context) ([]byte, error) {
	var n []byte
	err := r.db.QueryRowContext(ctx, "SELECT Note FROM "+recordTable+" WHERE TreeId = ?", r.treeID).Scan(&n)
	switch {
	case errors.Is(err, sql.ErrNoRows):
		return nil, nil
	case err != nil:
		return nil, fmt.Errorf("couldn't read the checkpoint record: %w", err)
	case len(n) == 0 || len(n) > maxRecordNote:
		return nil, fmt.Errorf("the checkpoint record of tree %d holds %d bytes, not a checkpoint", r.treeID, len(n))
	}
	return n, nil
}

// Swap replaces the record's note old (nil: no note yet) by new, of size
// size, and reports whether it did: false if the record no longer holds
// old.
func (r *Record) Swap(ctx context.Context, old, new []byte, size uint64) (bool, error) {
	if len(new) == 0 || len(new) > maxRecordNote {
		return false, fmt.Errorf("couldn't write the checkpoint record: a note of %d bytes", len(new))
	}
	if bytes.Equal(old, new) {
		return true, nil
	}
	var res sql.Result
	var err error
	if old == nil {
		res, err = r.db.ExecContext(ctx, "INSERT IGNORE INTO "+recordTable+" (TreeId, Size, Note) VALUES (?, ?, ?)", r.treeID, size, new)
	} else {
		res, err = r.db.ExecContext(ctx, "UPDATE "+recordTable+" SET Size = ?, Note = ? WHERE TreeId = ? AND Note = ?", size, new, r.treeID, old)
	}
	if err != nil {
		return false, fmt.Errorf("couldn't write the checkpoint record: %w", err)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return false, fmt.Errorf("couldn't write the checkpoint record: %w", err)
	}
	return n == 1, nil
}

// driverLogger is the driver's logger on slog.
type driverLogger struct{ l *slog.Logger }

func (d driverLogger) Print(v ...any) {
	d.l.Debug("checkpoint database driver: "+fmt.Sprint(v...), "component", "mysql")
}
