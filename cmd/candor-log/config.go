package main

import (
	"errors"
	"flag"
	"fmt"
	"path/filepath"
	"time"

	"github.com/candorlog/candor/api"
	"github.com/candorlog/candor/internal/cli"
	"github.com/candorlog/candor/internal/diskspace"
)

// Config is candor-log's configuration: a YAML file (--config) whose
// fields the command-line flags of the same name override.
type Config struct {
	// Data is the directory holding the log's database and, by default,
	// its key. Required.
	Data string `yaml:"data"`
	// Listen is the HTTP listen address. Default: "localhost:8080".
	Listen string `yaml:"listen"`
	// Origin is the log's origin line and key name, e.g.
	// "log.example.com/candor". Required when the key is created; when the
	// key exists it must match the key's name (or be empty).
	Origin string `yaml:"origin"`
	// Key is the file holding the log's signed-note private key. It is
	// created (mode 0600) on first start if missing.
	// Default: "<data>/log.key".
	Key string `yaml:"key"`
	// MaxBatchSize is the most entries integrated and synced in one commit.
	// Default: 4096; at most 1048576.
	MaxBatchSize int `yaml:"maxBatchSize"`
	// MaxPending is the most admitted entries waiting to be integrated;
	// beyond it submissions get 503 with Retry-After. Default: 65536; at most 16777216.
	MaxPending int `yaml:"maxPending"`
	// MaxInFlight is the most submissions handled at once; beyond it
	// submissions get 429 with Retry-After. Default: 4096; at most 1048576.
	MaxInFlight int `yaml:"maxInFlight"`
	// MaxInFlightPerClient is the most submissions from one client
	// address (an IPv6 /64) handled at once, body reads included; beyond
	// it submissions get 429. Behind a reverse proxy every client has
	// the proxy's address: raise it. Default: 64.
	MaxInFlightPerClient int `yaml:"maxInFlightPerClient"`
	// BodyTimeout bounds the reading of a submission's body; a slower
	// body gets 408. No submission slot is taken before the body is read.
	// Default: 10s.
	BodyTimeout time.Duration `yaml:"bodyTimeout"`
	// MaxBodyBytes is the largest submission body accepted (413 beyond).
	// Default: 131070 (twice the largest entry, 65535 bytes); between
	// 1024 and 64 MiB.
	MaxBodyBytes int64 `yaml:"maxBodyBytes"`
	// CacheMiB is pebble's block cache size in MiB. Default: 256, enough
	// to keep the leaf index's filters cached up to ~100 M entries; at
	// most 1048576 (1 TiB).
	CacheMiB int64 `yaml:"cacheMiB"`
	// LeafFilterMiB fixes the size of the in-memory filter that answers
	// most duplicate checks of new entries without reading pebble. 0 (the
	// default) sizes it for the log: 2 to 3 bytes per entry, at least
	// 3 MiB, replaced by a larger one in the background as the log grows
	// (metric candor_log_leaf_filter_false_positive_ratio); -1: no filter.
	LeafFilterMiB int64 `yaml:"leafFilterMiB"`
	// TileFiles keeps a copy of the full hash tiles, with the subtree
	// hashes stored with them, in flat files beside pebble
	// (<data>/db/tiles), which proofs and tile reads take with one read
	// of a file: in a log much larger than the block cache, a pebble
	// lookup that misses it costs several times that. About 36 bytes of
	// disk per entry; the files may be deleted while the log is stopped
	// (they are written again from pebble in the background). Default:
	// true.
	TileFiles bool `yaml:"tileFiles"`
	// BundleFiles moves the full entry bundles out of pebble into two
	// flat files (<data>/db/bundles/data and index), compressed, once
	// their commit is synced: a bundle is then read with two reads of a
	// file, at the same cost at any size of the log. The files are then
	// the only copy of those bundles: back them up with the database.
	// Turned off, the log still reads the bundles the files hold and
	// moves no more. Default: true.
	BundleFiles bool `yaml:"bundleFiles"`
	// MinFreeBytes is the free space kept on the data directory's
	// filesystem: below it new entries get 503 and /readyz fails, while
	// reads go on, until space is freed. -1 (the default) keeps 2% of
	// the filesystem, at least 256 MiB (room for pebble to flush a full
	// memtable and compact) and at most 4 GiB, but never more than a
	// quarter of it; 0 disables the check.
	MinFreeBytes int64 `yaml:"minFreeBytes"`
	// LogLevel is one of debug, info, warn, error. Default: info.
	LogLevel string `yaml:"logLevel"`
	// LogFormat is text or json. Default: text.
	LogFormat string `yaml:"logFormat"`

	// Policy is a c2sp.org/tlog-policy file: the witnesses (name,
	// cosignature/v1 verifier key, add-checkpoint URL prefix), groups and
	// the quorum. With it the log pushes every new checkpoint to those
	// witnesses (c2sp.org/tlog-witness) and publishes only checkpoints
	// cosigned by the quorum. Optional: without it every committed
	// checkpoint is published at once.
	Policy string `yaml:"policy"`
	// WitnessWait is how long a submission waits for a cosigned
	// checkpoint that includes it; then the reply is 202 Accepted (the
	// entry is sequenced and durable, not yet witnessed). 0 replies at
	// once. Only with policy. Default: 5s.
	WitnessWait time.Duration `yaml:"witnessWait"`
	// WitnessTimeout bounds each add-checkpoint request. Only with policy.
	// Default: 10s.
	WitnessTimeout time.Duration `yaml:"witnessTimeout"`
	// WitnessRetryMax is the longest wait before retrying a witness that
	// failed (the wait doubles from 100ms). Only with policy. Default: 10s.
	WitnessRetryMax time.Duration `yaml:"witnessRetryMax"`
	// TrustedRoot is a Sigstore trusted_root.json: with it, an entry signed
	// under a certificate is taken only if the certificate chains to one
	// of its certificate authorities, valid when the log takes it.
	// Optional: without it the log checks no certificate chain, and
	// records what the certificates say.
	TrustedRoot string `yaml:"trustedRoot"`

	// Storage is where the log's entries are stored and sequenced:
	// "pebble" (the default), the embedded database in data, or
	// "trillian", a Trillian tree (see Trillian), which every front end
	// mirrors into its data directory and serves from there.
	Storage string `yaml:"storage"`
	// Trillian is the tree the log runs on, with storage: trillian.
	Trillian TrillianConfig `yaml:"trillian"`
}

// TrillianConfig is the Trillian tree a log runs on.
type TrillianConfig struct {
	// Address is the Trillian log server's gRPC address, host:port.
	// Required with storage: trillian.
	Address string `yaml:"address"`
	// TreeID is the tree's ID, as "candor-log trillian init" printed it.
	// Required with storage: trillian.
	TreeID int64 `yaml:"treeID"`
	// Database is the MySQL/MariaDB database of the shared checkpoint
	// record, in go-sql-driver/mysql's form as Trillian's --mysql_uri:
	// user:password@tcp(host:3306)/trillian (Trillian's own database
	// will do). Every front end of the tree publishes its checkpoints
	// through that record. Required with storage: trillian.
	Database string `yaml:"database"`
	// Plaintext connects without TLS: a server on loopback or on a
	// private network only.
	Plaintext bool `yaml:"plaintext"`
	// CA is a PEM file of the authorities that issue the server's TLS
	// certificate. Default: the system's.
	CA string `yaml:"ca"`
	// ServerName is the name the server's certificate must hold.
	// Default: the address's host.
	ServerName string `yaml:"serverName"`
	// PollInterval is how often an idle front end asks Trillian for new
	// entries (other front ends' submissions); while its own submissions
	// wait, it asks every 10ms. Default: 1s.
	PollInterval time.Duration `yaml:"pollInterval"`
	// AddWait bounds how long a submission waits for Trillian to sequence
	// it; then it gets 503 (it stays queued: sent again, it gets its
	// proof). Default: 30s.
	AddWait time.Duration `yaml:"addWait"`
}

// defaults returns the configuration with every default set.
func defaults() Config {
	return Config{
		Listen:       "localhost:8080",
		MaxBatchSize: 4096,
		MaxPending:   65536,
		MaxInFlight:  4096,
		MaxBodyBytes: 2 * api.MaxEntrySize,
		CacheMiB:     256,
		TileFiles:    true,
		BundleFiles:  true,
		MinFreeBytes: diskspace.Auto,
		LogLevel:     "info",
		LogFormat:    "text",

		MaxInFlightPerClient: 64,
		BodyTimeout:          10 * time.Second,

		WitnessWait:     5 * time.Second,
		WitnessTimeout:  10 * time.Second,
		WitnessRetryMax: 10 * time.Second,

		Storage:  "pebble",
		Trillian: TrillianConfig{PollInterval: time.Second, AddWait: 30 * time.Second},
	}
}

// loadConfig builds the configuration from defaults, then the YAML file
// named by --config, then the flags that were set on the command line.
func loadConfig(fs *flag.FlagSet, args []string) (Config, error) {
	c := defaults()
	fs.StringVar(&c.Data, "data", "", "`directory` for the log's database and key (required)")
	fs.StringVar(&c.Listen, "listen", c.Listen, "HTTP listen `address`")
	fs.StringVar(&c.Origin, "origin", "", "log `origin` and key name (required on first start)")
	fs.StringVar(&c.Key, "key", "", "signed-note private key `file` (default <data>/log.key)")
	fs.IntVar(&c.MaxBatchSize, "max-batch", c.MaxBatchSize, "most entries per commit")
	fs.IntVar(&c.MaxPending, "max-pending", c.MaxPending, "most entries waiting to be integrated")
	fs.IntVar(&c.MaxInFlight, "max-in-flight", c.MaxInFlight, "most submissions handled at once")
	fs.IntVar(&c.MaxInFlightPerClient, "max-in-flight-per-client", c.MaxInFlightPerClient, "most submissions from one client address handled at once")
	cli.DurationVar(fs, &c.BodyTimeout, "body-timeout", c.BodyTimeout, "longest read of a submission's body (408 beyond)")
	fs.Int64Var(&c.MaxBodyBytes, "max-body", c.MaxBodyBytes, "largest submission body in bytes")
	fs.Int64Var(&c.CacheMiB, "cache-mib", c.CacheMiB, "pebble block cache in MiB")
	fs.Int64Var(&c.LeafFilterMiB, "leaf-filter-mib", c.LeafFilterMiB, "leaf filter in MiB (0: sized for the log, -1: none)")
	fs.BoolVar(&c.TileFiles, "tile-files", c.TileFiles, "keep the full hash tiles in flat files too, for one-read proofs (--tile-files=false: pebble only)")
	fs.BoolVar(&c.BundleFiles, "bundle-files", c.BundleFiles, "move the full entry bundles out of pebble into flat files (--bundle-files=false: move no more)")
	fs.Int64Var(&c.MinFreeBytes, "min-free-bytes", c.MinFreeBytes, "free bytes kept on the data filesystem; below them new entries get 503 (-1: automatic, 0: off)")
	fs.StringVar(&c.LogLevel, "log-level", c.LogLevel, "debug, info, warn or error")
	fs.StringVar(&c.LogFormat, "log-format", c.LogFormat, "text or json")
	fs.StringVar(&c.Policy, "policy", "", "c2sp.org/tlog-policy `file`: publish only checkpoints its witnesses cosigned")
	fs.StringVar(&c.TrustedRoot, "trusted-root", "", "Sigstore trusted_root.json `file`: take only certificates its certificate authorities issued")
	cli.DurationVar(fs, &c.WitnessWait, "witness-wait", c.WitnessWait, "how long a submission waits for a cosigned checkpoint before 202")
	cli.DurationVar(fs, &c.WitnessTimeout, "witness-timeout", c.WitnessTimeout, "timeout of one add-checkpoint request")
	cli.DurationVar(fs, &c.WitnessRetryMax, "witness-retry-max", c.WitnessRetryMax, "longest wait before retrying a failing witness")
	fs.StringVar(&c.Storage, "storage", c.Storage, "pebble (embedded) or trillian (a Trillian tree, see --trillian)")
	fs.StringVar(&c.Trillian.Address, "trillian", "", "Trillian log server `address` (host:port), with --storage trillian")
	fs.Int64Var(&c.Trillian.TreeID, "trillian-tree", 0, "Trillian tree `id`, as candor-log trillian init printed it")
	fs.StringVar(&c.Trillian.Database, "trillian-db", "", "MySQL/MariaDB `dsn` of the shared checkpoint record, user:password@tcp(host:3306)/trillian (a flag shows in ps: prefer the config file)")
	fs.BoolVar(&c.Trillian.Plaintext, "trillian-plaintext", false, "connect to Trillian without TLS (loopback or a private network only)")
	fs.StringVar(&c.Trillian.CA, "trillian-ca", "", "PEM `file` of the authorities that issue Trillian's TLS certificate (default: the system's)")
	fs.StringVar(&c.Trillian.ServerName, "trillian-server-name", "", "`name` Trillian's certificate must hold (default: the address's host)")
	cli.DurationVar(fs, &c.Trillian.PollInterval, "trillian-poll", c.Trillian.PollInterval, "how often an idle front end asks Trillian for new entries")
	cli.DurationVar(fs, &c.Trillian.AddWait, "trillian-add-wait", c.Trillian.AddWait, "longest wait of a submission for Trillian to sequence it (503 beyond)")
	if err := cli.ParseConfig(fs, args, &c, "YAML configuration `file`"); err != nil {
		return c, err
	}
	if c.Key == "" && c.Data != "" {
		c.Key = filepath.Join(c.Data, "log.key")
	}
	return c, c.validate()
}

// The largest sizes accepted: beyond them a value is a mistake (a typo, a
// unit confused), not a setting.
const (
	maxBatchSize = 1 << 20
	maxPending   = 1 << 24
	maxInFlight  = 1 << 20
	maxBodyBytes = 64 << 20 // entries are at most 64 KiB
	maxCacheMiB  = 1 << 20  // 1 TiB
)

// checkRange returns an error naming field if v is not in [lo, hi], or nil.
func checkRange(field string, v, lo, hi int64) error {
	if v < lo || v > hi {
		return fmt.Errorf("%s %d: want between %d and %d", field, v, lo, hi)
	}
	return nil
}

// validate checks the configuration once, after all sources are merged.
func (c Config) validate() error {
	errs := cli.Server{Data: c.Data, Listen: c.Listen, KeyField: "origin", KeyName: c.Origin, LogLevel: c.LogLevel, LogFormat: c.LogFormat}.Check()
	errs = append(errs,
		checkRange("maxBatchSize", int64(c.MaxBatchSize), 1, maxBatchSize),
		checkRange("maxPending", int64(c.MaxPending), 1, maxPending),
		checkRange("maxInFlight", int64(c.MaxInFlight), 1, maxInFlight),
		checkRange("maxInFlightPerClient", int64(c.MaxInFlightPerClient), 1, maxInFlight),
		checkRange("maxBodyBytes", c.MaxBodyBytes, 1024, maxBodyBytes),
		checkRange("cacheMiB", c.CacheMiB, 1, maxCacheMiB),
		checkRange("leafFilterMiB", c.LeafFilterMiB, -1, maxCacheMiB))
	if c.BodyTimeout < 100*time.Millisecond || c.BodyTimeout > 10*time.Minute {
		errs = append(errs, fmt.Errorf("bodyTimeout %v: want between 100ms and 10m", c.BodyTimeout))
	}
	if c.MinFreeBytes < diskspace.Auto {
		errs = append(errs, fmt.Errorf("minFreeBytes %d: want -1 (automatic), 0 (off) or a number of bytes", c.MinFreeBytes))
	}
	if c.WitnessWait < 0 || c.WitnessWait > 10*time.Minute {
		errs = append(errs, fmt.Errorf("witnessWait %v: want between 0 and 10m", c.WitnessWait))
	}
	if c.WitnessTimeout < 100*time.Millisecond || c.WitnessTimeout > 10*time.Minute {
		errs = append(errs, fmt.Errorf("witnessTimeout %v: want between 100ms and 10m", c.WitnessTimeout))
	}
	if c.WitnessRetryMax < 100*time.Millisecond || c.WitnessRetryMax > time.Hour {
		errs = append(errs, fmt.Errorf("witnessRetryMax %v: want between 100ms and 1h", c.WitnessRetryMax))
	}
	switch c.Storage {
	case "pebble":
		if c.Trillian.Address != "" || c.Trillian.TreeID != 0 || c.Trillian.Database != "" {
			errs = append(errs, errors.New("trillian: set, but storage is pebble: add storage: trillian"))
		}
	case "trillian":
		t := c.Trillian
		if t.Address == "" {
			errs = append(errs, errors.New("trillian.address: required with storage: trillian"))
		}
		if t.TreeID <= 0 {
			errs = append(errs, errors.New("trillian.treeID: required with storage: trillian (candor-log trillian init creates a tree)"))
		}
		if t.Database == "" {
			errs = append(errs, errors.New("trillian.database: required with storage: trillian (the MySQL/MariaDB database of the front ends' shared checkpoint record)"))
		}
		if t.Plaintext && (t.CA != "" || t.ServerName != "") {
			errs = append(errs, errors.New("trillian.plaintext: takes no ca or serverName"))
		}
		if t.PollInterval < 10*time.Millisecond || t.PollInterval > time.Hour {
			errs = append(errs, fmt.Errorf("trillian.pollInterval %v: want between 10ms and 1h", t.PollInterval))
		}
		if t.AddWait < 100*time.Millisecond || t.AddWait > 10*time.Minute {
			errs = append(errs, fmt.Errorf("trillian.addWait %v: want between 100ms and 10m", t.AddWait))
		}
	default:
		errs = append(errs, fmt.Errorf("storage %q: want pebble or trillian", c.Storage))
	}
	return errors.Join(errs...)
}
