package main

import (
	"encoding/base64"
	"errors"
	"flag"
	"fmt"
	"net"
	"path/filepath"
	"strconv"
	"time"

	"golang.org/x/mod/sumdb/note"

	"github.com/candorlog/candor/api"
	"github.com/candorlog/candor/internal/cli"
	"github.com/candorlog/candor/internal/diskspace"
	"github.com/candorlog/candor/witness"
)

// The bounds of a poll interval.
const (
	minPollInterval = 100 * time.Millisecond
	maxPollInterval = 24 * time.Hour
)

// Config is candor-witness's configuration: a YAML file (--config) whose
// top-level fields the command-line flags of the same name override.
type Config struct {
	// Name is the witness's key name, e.g. "witness.example.com/w1".
	// Required when the key is created; when the key exists it must match
	// the key's name (or be empty).
	Name string `yaml:"name"`
	// Data is the directory holding the witness's state and, by default,
	// its key. Required.
	Data string `yaml:"data"`
	// Listen is the HTTP listen address. Default: "localhost:8081".
	Listen string `yaml:"listen"`
	// Key is the file holding the witness's cosignature/v1 private key. It
	// is created (mode 0600) on first start if missing.
	// Default: "<data>/witness.key".
	Key string `yaml:"key"`
	// Logs are the logs the witness follows. At least one is required.
	Logs []LogConfig `yaml:"logs"`
	// MinFreeBytes is the free space kept on the data directory's
	// filesystem: below it add-checkpoint answers 503 (nothing new is
	// cosigned) and /readyz fails, until space is freed. -1 (the default)
	// keeps 2% of the filesystem, at least 256 MiB and at most 4 GiB, but
	// never more than a quarter of it; 0 disables the check.
	MinFreeBytes int64 `yaml:"minFreeBytes"`
	// LogLevel is one of debug, info, warn, error. Default: info.
	LogLevel string `yaml:"logLevel"`
	// LogFormat is text or json. Default: text.
	LogFormat string `yaml:"logFormat"`
	// PollInterval is the time between two polls of a log that has a URL,
	// unless the log sets its own. Between 100ms and 24h. Default: 10s.
	PollInterval time.Duration `yaml:"pollInterval"`
	// MaxInFlightPerClient is the most add-checkpoint and gossip
	// requests from one client address (an IPv6 /64) handled at once,
	// body reads included; beyond it they get 429. Behind a reverse
	// proxy every client has the proxy's address: raise it. Default: 64.
	MaxInFlightPerClient int `yaml:"maxInFlightPerClient"`
	// BodyTimeout bounds the reading of an add-checkpoint or gossip
	// request's body; a slower body gets 408. Default: 10s.
	BodyTimeout time.Duration `yaml:"bodyTimeout"`
	// Gossip configures the memberlist gossip between witnesses.
	// Optional: without gossip.listen the witness does not gossip.
	Gossip GossipConfig `yaml:"gossip"`
	// Peers are the witnesses whose gossip this one trusts. Optional.
	Peers []PeerConfig `yaml:"peers"`
}

// GossipConfig configures the witness's gossip node.
type GossipConfig struct {
	// Listen is the host:port memberlist listens on, TCP and UDP (port 0
	// picks a free one). Required to gossip.
	Listen string `yaml:"listen"`
	// Join are host:port addresses of other witnesses' gossip nodes
	// (seeds). The witness tries them, with backoff, until it reaches
	// one, whatever the order in which the witnesses start, and rejoins
	// them (and the members it saw fail) while it sees fewer members than
	// Members. Optional: others may join this one.
	Join []string `yaml:"join"`
	// Members is the number of members the witness expects in the
	// cluster, itself included. Optional. Default: one more than the
	// number of peers or of join addresses, whichever is larger.
	Members int `yaml:"members"`
	// Secret is the key that encrypts and authenticates gossip traffic
	// (memberlist's SecretKey), the same for every member: standard
	// base64 of 16, 24 or 32 random bytes (`head -c 32 /dev/urandom |
	// base64`). Optional, but without it anyone who reaches the port can
	// read the gossip (it is public data) and join.
	Secret string `yaml:"secret"`
}

// PeerConfig is a witness this one trusts.
type PeerConfig struct {
	// Name is the witness's key name. Required.
	Name string `yaml:"name"`
	// Key is its cosignature/v1 verifier key (name+id+key), as
	// candor-witness prints it. Required; its name must be Name.
	Key string `yaml:"key"`
}

// LogConfig is one log the witness follows.
type LogConfig struct {
	// Origin is the log's origin line. Required.
	Origin string `yaml:"origin"`
	// Key is the log's signed-note verifier key (name+id+key); its name
	// must be the origin. Required.
	Key string `yaml:"key"`
	// URL is the base URL of the log's c2sp.org/tlog-tiles API (http or
	// https), such that URL/checkpoint is its checkpoint. Optional: when
	// set, the witness polls the log (pull mode), builds the consistency
	// proofs from its tiles and cosigns its new checkpoints itself; when
	// not, it only cosigns what is pushed to POST /add-checkpoint.
	URL string `yaml:"url"`
	// PollInterval overrides the global PollInterval for this log.
	// Optional; only with URL.
	PollInterval time.Duration `yaml:"pollInterval"`
	// Audit has the witness read and check every entry of the log (its
	// hashes into the tree and its admission rules, as candor monitor
	// does) before it cosigns a tree that holds it; an entry that fails
	// is evidence. Needs URL. Optional.
	Audit bool `yaml:"audit"`
}

func defaults() Config {
	return Config{Listen: "localhost:8081", LogLevel: "info", LogFormat: "text", PollInterval: witness.DefaultPullInterval,
		MaxInFlightPerClient: 64, BodyTimeout: 10 * time.Second, MinFreeBytes: diskspace.Auto}
}

// loadConfig builds the configuration from defaults, then the YAML file
// named by --config, then the flags that were set on the command line.
func loadConfig(fs *flag.FlagSet, args []string) (Config, error) {
	c := defaults()
	fs.StringVar(&c.Name, "name", "", "the witness's key `name` (required on first start)")
	fs.StringVar(&c.Data, "data", "", "`directory` for the witness's state and key (required)")
	fs.StringVar(&c.Listen, "listen", c.Listen, "HTTP listen `address`")
	fs.StringVar(&c.Key, "key", "", "cosigner private key `file` (default <data>/witness.key)")
	fs.Int64Var(&c.MinFreeBytes, "min-free-bytes", c.MinFreeBytes, "free bytes kept on the data filesystem; below them add-checkpoint gets 503 (-1: automatic, 0: off)")
	fs.StringVar(&c.LogLevel, "log-level", c.LogLevel, "debug, info, warn or error")
	fs.StringVar(&c.LogFormat, "log-format", c.LogFormat, "text or json")
	cli.DurationVar(fs, &c.PollInterval, "poll-interval", c.PollInterval, "time between two polls of a log that has a `url`")
	fs.IntVar(&c.MaxInFlightPerClient, "max-in-flight-per-client", c.MaxInFlightPerClient, "most POST requests from one client address handled at once")
	cli.DurationVar(fs, &c.BodyTimeout, "body-timeout", c.BodyTimeout, "longest read of a POST request's body (408 beyond)")
	if err := cli.ParseConfig(fs, args, &c, "YAML configuration `file` (logs to follow)"); err != nil {
		return c, err
	}
	if c.Key == "" && c.Data != "" {
		c.Key = filepath.Join(c.Data, "witness.key")
	}
	return c, c.validate()
}

func (c Config) validate() error {
	errs := cli.Server{Data: c.Data, Listen: c.Listen, KeyField: "name", KeyName: c.Name, LogLevel: c.LogLevel, LogFormat: c.LogFormat}.Check()
	if len(c.Logs) == 0 {
		errs = append(errs, errors.New("logs: at least one log is required (in --config)"))
	}
	seen := make(map[string]bool)
	for i, l := range c.Logs {
		if l.Origin == "" || l.Key == "" {
			errs = append(errs, fmt.Errorf("logs[%d]: origin and key are required", i))
		}
		if err := cli.CheckName("origin", l.Origin); err != nil {
			errs = append(errs, fmt.Errorf("logs[%d]: %w", i, err))
		}
		if seen[l.Origin] {
			errs = append(errs, fmt.Errorf("logs[%d]: origin %q is listed twice", i, l.Origin))
		}
		seen[l.Origin] = true
		if l.URL != "" {
			if _, err := witness.CheckPullURL(l.URL); err != nil {
				errs = append(errs, fmt.Errorf("logs[%d]: %w", i, err))
			}
		}
		if l.Audit && l.URL == "" {
			errs = append(errs, fmt.Errorf("logs[%d]: audit needs a url to read the entries from", i))
		}
		switch {
		case l.PollInterval != 0 && l.URL == "":
			errs = append(errs, fmt.Errorf("logs[%d]: pollInterval needs a url", i))
		case l.PollInterval != 0:
			if err := checkPollInterval(l.PollInterval); err != nil {
				errs = append(errs, fmt.Errorf("logs[%d]: %w", i, err))
			}
		}
	}
	if err := checkPollInterval(c.PollInterval); err != nil {
		errs = append(errs, err)
	}
	if c.MaxInFlightPerClient < 1 {
		errs = append(errs, errors.New("maxInFlightPerClient: must be at least 1"))
	}
	if c.BodyTimeout < 100*time.Millisecond || c.BodyTimeout > 10*time.Minute {
		errs = append(errs, fmt.Errorf("bodyTimeout %v: want between 100ms and 10m", c.BodyTimeout))
	}
	if c.MinFreeBytes < diskspace.Auto {
		errs = append(errs, fmt.Errorf("minFreeBytes %d: want -1 (automatic), 0 (off) or a number of bytes", c.MinFreeBytes))
	}
	errs = append(errs, c.validateGossip()...)
	return errors.Join(errs...)
}

func checkPollInterval(d time.Duration) error {
	if d < minPollInterval || d > maxPollInterval {
		return fmt.Errorf("pollInterval %v: want between %v and %v", d, minPollInterval, maxPollInterval)
	}
	return nil
}

// pullSources returns the logs that have a URL, to poll.
func (c Config) pullSources() []witness.Source {
	var sources []witness.Source
	for _, l := range c.Logs {
		if l.URL == "" {
			continue
		}
		interval := l.PollInterval
		if interval == 0 {
			interval = c.PollInterval
		}
		sources = append(sources, witness.Source{Origin: l.Origin, URL: l.URL, Interval: interval})
	}
	return sources
}

func (c Config) validateGossip() []error {
	var errs []error
	g := c.Gossip
	if g.Listen == "" && (len(g.Join) > 0 || g.Secret != "" || g.Members != 0) {
		errs = append(errs, errors.New("gossip: join, members and secret need a listen address"))
	}
	if g.Listen != "" {
		if err := checkHostPort(g.Listen); err != nil {
			errs = append(errs, fmt.Errorf("gossip.listen: %w", err))
		}
	}
	if g.Members < 0 {
		errs = append(errs, fmt.Errorf("gossip.members: %d, want a positive number", g.Members))
	}
	for i, a := range g.Join {
		if err := checkHostPort(a); err != nil {
			errs = append(errs, fmt.Errorf("gossip.join[%d]: %w", i, err))
		}
	}
	if _, err := c.gossipSecret(); err != nil {
		errs = append(errs, err)
	}
	seen := make(map[string]bool)
	for i, p := range c.Peers {
		if p.Name == "" || p.Key == "" {
			errs = append(errs, fmt.Errorf("peers[%d]: name and key are required", i))
			continue
		}
		v, err := api.NewCosignatureVerifier(p.Key)
		if err != nil {
			errs = append(errs, fmt.Errorf("peers[%d] (%s): key: %w", i, p.Name, err))
			continue
		}
		if v.Name() != p.Name {
			errs = append(errs, fmt.Errorf("peers[%d]: the key is named %q, not %q", i, v.Name(), p.Name))
		}
		if seen[p.Key] {
			errs = append(errs, fmt.Errorf("peers[%d]: key of %q is listed twice", i, p.Name))
		}
		seen[p.Key] = true
	}
	return errs
}

// checkHostPort checks a host:port address with a numeric port.
func checkHostPort(a string) error {
	_, port, err := net.SplitHostPort(a)
	if err != nil {
		return fmt.Errorf("%q: want host:port: %w", a, err)
	}
	if _, err := strconv.ParseUint(port, 10, 16); err != nil {
		return fmt.Errorf("%q: the port must be a number from 0 to 65535", a)
	}
	return nil
}

// gossipMembers returns the number of members the witness expects.
func (c Config) gossipMembers() int {
	if c.Gossip.Members > 0 {
		return c.Gossip.Members
	}
	return max(len(c.Peers), len(c.Gossip.Join)) + 1
}

// gossipSecret decodes gossip.secret, or returns nil if it is not set.
func (c Config) gossipSecret() ([]byte, error) {
	if c.Gossip.Secret == "" {
		return nil, nil
	}
	b, err := base64.StdEncoding.DecodeString(c.Gossip.Secret)
	if err != nil {
		return nil, fmt.Errorf("gossip.secret: not standard base64: %w", err)
	}
	if l := len(b); l != 16 && l != 24 && l != 32 {
		return nil, fmt.Errorf("gossip.secret: %d bytes, want 16, 24 or 32", l)
	}
	return b, nil
}

// peerVerifiers returns the verifiers of the peers' cosignatures.
func (c Config) peerVerifiers() ([]note.Verifier, error) {
	var vs []note.Verifier
	for i, p := range c.Peers {
		v, err := api.NewCosignatureVerifier(p.Key)
		if err != nil {
			return nil, fmt.Errorf("peers[%d]: %w", i, err)
		}
		vs = append(vs, v)
	}
	return vs, nil
}
