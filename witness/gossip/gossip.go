// Package gossip connects witnesses with hashicorp/memberlist, so that
// they compare the checkpoints they cosigned and catch a log that shows
// different views to different witnesses.
//
// Each witness gossips, per log, the newest checkpoint it holds with the
// cosignatures it holds on it (queued in a memberlist
// TransmitLimitedQueue, where a newer message for a log invalidates the
// older one), and every piece of evidence it stores. Push/pull state sync
// (LocalState, MergeRemoteState) carries all of it, so a witness that
// joins late or missed a broadcast catches up.
//
// Messages are self-authenticating and the memberlist node names are
// never trusted: a checkpoint counts only if it is signed by the log (as
// configured in the witness) and carries a valid cosignature by a peer
// (by key), and evidence only if it verifies with the log's key
// (witness.Witness.Observe and AddEvidence). Anything else is dropped and
// counted in candor_witness_gossip_messages_total.
//
// Every message starts with a type byte: 'c' and a signed checkpoint, or
// 'e' and encoded api.Evidence. A push/pull state is a sequence of
// records, each a type byte, a big-endian uint32 length and a message
// body.
//
// gossip_test.go runs clusters of real memberlist nodes on loopback with
// real pebble state and a Byzantine log that shows one view to half of
// them and another to the rest.
package gossip

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"log"
	"log/slog"
	"net"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/hashicorp/memberlist"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/candorlog/candor/api"
	"github.com/candorlog/candor/witness"
)

// Message types.
const (
	typeCheckpoint = 'c' // a checkpoint the witness saw, with the cosignatures it holds
	typeOwn        = 'o' // the checkpoint the witness cosigned last
	typeEvidence   = 'e'
	typeNodeName   = 'n' // the first record of a push/pull state: the sender's node name
)

// Bounds.
const (
	// maxCheckpointMessage bounds a gossiped checkpoint.
	maxCheckpointMessage = 64 << 10
	// maxState bounds a push/pull state: records past it are left out.
	maxState = 8 << 20
	// maxStateEvidence bounds the evidence in a push/pull state, which
	// comes after every checkpoint: evidence never crowds them out.
	maxStateEvidence = 4 << 20
	// queueLength bounds the messages of each priority waiting to be
	// checked; more are dropped (and counted).
	queueLength = 1024
	// maxExchangePeers bounds the peers whose last exchange is a metric.
	maxExchangePeers = 1024
	// maxFailed bounds the addresses of failed members the node tries
	// to rejoin.
	maxFailed = 256
	// failedFor is how long the node tries to rejoin a failed member.
	failedFor = 24 * time.Hour
	// duplicateWindow is how long a message already handled is dropped
	// when it comes again (at least this long, at most twice it).
	duplicateWindow = 30 * time.Second
	// aloneWarning is the time between two warnings while alone.
	aloneWarning = time.Minute
	// maxJoinsInFlight bounds the join attempts in flight to one address.
	maxJoinsInFlight = 4
)

// Join defaults.
const (
	DefaultJoinBackoffMin = 100 * time.Millisecond
	DefaultJoinBackoffMax = 2 * time.Second
)

// Config configures a Node.
type Config struct {
	// Listen is the host:port memberlist binds, for TCP and UDP. Port 0
	// picks a free port. Required.
	Listen string
	// Join are host:port addresses of members to join (seeds). The node
	// tries them, with backoff, until it reaches one, and again whenever
	// it sees fewer members than Expect. Optional.
	Join []string
	// Expect is the number of members the node expects in the cluster,
	// itself included: while it sees fewer, it keeps rejoining the seeds
	// and the members it saw fail that are not members now, so that any
	// start order and any healed partition give one cluster. Default:
	// len(Join)+1.
	Expect int
	// JoinBackoffMin and JoinBackoffMax bound the time between two join
	// attempts: it doubles after each failed one. Defaults:
	// DefaultJoinBackoffMin and DefaultJoinBackoffMax.
	JoinBackoffMin, JoinBackoffMax time.Duration
	// SecretKey, if set, encrypts and authenticates the gossip traffic
	// (memberlist's AES-GCM keyring): 16, 24 or 32 bytes, the same for
	// every member. Without it anyone who can reach Listen can join the
	// cluster and send the node messages, and Start logs a warning.
	SecretKey []byte
	// NodeName is the memberlist node name, unique in the cluster.
	// Default: the witness's name. It is not trusted for anything.
	NodeName string
	// PacketRate and StreamRate bound the UDP packets and TCP streams a
	// second that one source address may send the node; more are
	// dropped. Defaults: DefaultPacketRate, DefaultStreamRate.
	PacketRate, StreamRate float64
	// Logger receives structured logs. Default: slog.Default().
	Logger *slog.Logger
	// Registerer, if set, receives the node's metrics (see Start).
	Registerer prometheus.Registerer
	// Tune, if set, adjusts the memberlist configuration (a
	// memberlist.DefaultLANConfig) before it is used, for example its
	// intervals in tests.
	Tune func(*memberlist.Config)
	// WrapTransport, if set, wraps the node's transport, to inject
	// network faults in tests.
	WrapTransport func(memberlist.NodeAwareTransport) memberlist.NodeAwareTransport
}

// Node is a witness's gossip node.
type Node struct {
	w *witness.Witness
	// name is the node's name in memberlist, known before ml is: a
	// member may push/pull with the node while memberlist.Create runs.
	name   string
	ml     *memberlist.Memberlist
	queue  *memberlist.TransmitLimitedQueue
	logger *slog.Logger
	seeds  []string
	expect int
	bmin   time.Duration
	bmax   time.Duration

	// high holds the checkpoints witnesses cosigned and push/pull state;
	// low the rest. run checks high first.
	high, low chan []byte
	stop      chan struct{}
	done      chan struct{}

	mu           sync.Mutex
	live         map[string]string    // member name -> address, from the events (memberlist's own nodes must not be read unlocked)
	failed       map[string]time.Time // address of a failed member -> when
	lastExchange map[string]time.Time // member name -> last push/pull state received
	seen         [2]map[[32]byte]bool // handled messages: this window and the last
	seenSince    time.Time

	messages  *prometheus.CounterVec
	joins     *prometheus.CounterVec
	exchanges *prometheus.GaugeVec

	// stateMu is held (read) while LocalState reads the witness, and
	// (write) by Close: memberlist may still run a push/pull after its
	// Shutdown, and the witness's state is closed after Close returns.
	stateMu sync.RWMutex
	closed  bool

	closeOnce sync.Once
}

// Start starts the gossip node of w, sets itself as w's Announcer,
// announces w's state, and joins cfg.Join in the background. Close stops
// it. Its metrics: candor_witness_gossip_messages_total{type,result},
// candor_witness_gossip_members, candor_witness_gossip_expected_members,
// candor_witness_gossip_joins_total{result} and
// candor_witness_gossip_last_exchange_timestamp_seconds{peer}.
func Start(w *witness.Witness, cfg Config) (*Node, error) {
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	host, port, err := net.SplitHostPort(cfg.Listen)
	if err != nil {
		return nil, fmt.Errorf("gossip: listen address %q: %w", cfg.Listen, err)
	}
	p, err := strconv.ParseUint(port, 10, 16)
	if err != nil {
		return nil, fmt.Errorf("gossip: listen address %q: bad port", cfg.Listen)
	}
	if l := len(cfg.SecretKey); l != 0 && l != 16 && l != 24 && l != 32 {
		return nil, fmt.Errorf("gossip: the secret key is %d bytes, want 16, 24 or 32", l)
	}
	if cfg.Expect <= 0 {
		cfg.Expect = len(cfg.Join) + 1
	}
	if cfg.JoinBackoffMin <= 0 {
		cfg.JoinBackoffMin = DefaultJoinBackoffMin
	}
	if cfg.JoinBackoffMax < cfg.JoinBackoffMin {
		cfg.JoinBackoffMax = max(cfg.JoinBackoffMin, DefaultJoinBackoffMax)
	}
	if cfg.PacketRate <= 0 {
		cfg.PacketRate = DefaultPacketRate
	}
	if cfg.StreamRate <= 0 {
		cfg.StreamRate = DefaultStreamRate
	}
	n := &Node{
		w:            w,
		logger:       cfg.Logger,
		seeds:        slices.Clone(cfg.Join),
		expect:       cfg.Expect,
		bmin:         cfg.JoinBackoffMin,
		bmax:         cfg.JoinBackoffMax,
		high:         make(chan []byte, queueLength),
		low:          make(chan []byte, queueLength),
		stop:         make(chan struct{}),
		done:         make(chan struct{}),
		live:         make(map[string]string),
		failed:       make(map[string]time.Time),
		lastExchange: make(map[string]time.Time),
		seen:         [2]map[[32]byte]bool{make(map[[32]byte]bool), make(map[[32]byte]bool)},
		seenSince:    time.Now(),
		messages: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "candor_witness_gossip_messages_total",
			Help: "Gossip received, by type (checkpoint, own, evidence, state, packet, stream, unknown) and result (accepted, duplicate, unknown_log, untrusted, invalid, dropped, limited, error).",
		}, []string{"type", "result"}),
		joins: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "candor_witness_gossip_joins_total",
			Help: "Attempts to join a seed or a failed member, by result (ok, failed).",
		}, []string{"result"}),
		exchanges: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "candor_witness_gossip_last_exchange_timestamp_seconds",
			Help: "When the witness last received the push/pull state of a member, by the member's node name (Unix seconds).",
		}, []string{"peer"}),
	}
	// The counters an alert reads are present from the start, at zero.
	for _, r := range []string{"ok", "failed"} {
		n.joins.WithLabelValues(r)
	}
	for _, typ := range []string{"checkpoint", "own", "evidence", "state"} {
		for _, r := range []string{"accepted", "invalid", "dropped"} {
			n.messages.WithLabelValues(typ, r)
		}
	}
	mc := memberlist.DefaultLANConfig()
	mc.Name = cfg.NodeName
	if mc.Name == "" {
		mc.Name = w.Name()
	}
	mc.SecretKey = cfg.SecretKey
	mc.Delegate = delegate{n}
	mc.Events = events{n}
	mc.LogOutput = slogWriter{cfg.Logger.With("component", "memberlist")}
	if cfg.Tune != nil {
		cfg.Tune(mc)
	}
	tr, err := newLimitedTransport(host, int(p), cfg.PacketRate, cfg.StreamRate,
		func(kind string) { n.messages.WithLabelValues(kind, "limited").Inc() },
		log.New(mc.LogOutput, "", 0))
	if err != nil {
		return nil, fmt.Errorf("gossip: couldn't listen on %s: %w", cfg.Listen, err)
	}
	mc.BindAddr = tr.bind.String()
	mc.BindPort = tr.GetAutoBindPort()
	mc.AdvertisePort = mc.BindPort
	mc.Transport = tr
	if cfg.WrapTransport != nil {
		mc.Transport = cfg.WrapTransport(tr)
	}
	n.queue = &memberlist.TransmitLimitedQueue{RetransmitMult: mc.RetransmitMult}
	n.name = mc.Name
	go n.run()
	ml, err := memberlist.Create(mc)
	if err != nil {
		tr.Shutdown()
		close(n.stop)
		<-n.done
		return nil, fmt.Errorf("gossip: couldn't start memberlist on %s: %w", cfg.Listen, err)
	}
	n.ml = ml
	n.queue.NumNodes = ml.NumMembers
	if cfg.Registerer != nil {
		members := prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "candor_witness_gossip_members",
			Help: "Members of the gossip cluster the witness sees alive, itself included.",
		}, func() float64 { return float64(ml.NumMembers()) })
		expected := prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "candor_witness_gossip_expected_members",
			Help: "Members the witness expects in the gossip cluster, itself included; while it sees fewer it rejoins.",
		})
		expected.Set(float64(n.expect))
		for _, c := range []prometheus.Collector{n.messages, n.joins, n.exchanges, members, expected} {
			if err := cfg.Registerer.Register(c); err != nil {
				ml.Shutdown()
				close(n.stop)
				<-n.done
				return nil, fmt.Errorf("couldn't register the gossip metrics: %w", err)
			}
		}
	}
	if len(cfg.SecretKey) == 0 {
		n.logger.Warn("gossip is not encrypted: anyone who can reach the gossip port can join the cluster and send the witness messages; set a gossip secret",
			"listen", n.Addr())
	}
	w.SetAnnouncer(n)
	w.AnnounceState(context.Background())
	go n.maintain()
	return n, nil
}

// Addr returns the address memberlist listens on.
func (n *Node) Addr() string {
	ln := n.ml.LocalNode()
	return net.JoinHostPort(ln.Addr.String(), strconv.Itoa(int(ln.Port)))
}

// Join joins the members at addrs, and returns how many it reached.
func (n *Node) Join(addrs []string) (int, error) { return n.ml.Join(addrs) }

// Members returns the number of members the node knows alive, itself
// included.
func (n *Node) Members() int { return n.ml.NumMembers() }

// Close leaves the cluster (waiting at most timeout for the others to
// hear it), stops the node, and stops announcing the witness's news.
func (n *Node) Close(timeout time.Duration) error {
	var err error
	n.closeOnce.Do(func() {
		n.w.SetAnnouncer(nil)
		close(n.stop)
		err = n.ml.Leave(timeout)
		if serr := n.ml.Shutdown(); err == nil {
			err = serr
		}
		n.stateMu.Lock()
		n.closed = true
		n.stateMu.Unlock()
		<-n.done
	})
	return err
}

// maintain joins the seeds until it reaches one, then rejoins, while the
// node sees fewer members than it expects, the seeds and the failed
// members that are not members now. The time between two rounds doubles
// while every attempt fails, from JoinBackoffMin to JoinBackoffMax. An
// attempt to an address that drops packets lasts memberlist's TCPTimeout,
// and its retries of the connection grow apart, so a round starts another
// one to an address whose last attempt is older than JoinBackoffMax, up to
// maxJoinsInFlight: a partition that heals is found within about a second
// or two. It warns, once a minute, while the node is alone.
func (n *Node) maintain() {
	type result struct {
		addr string
		ok   bool
	}
	type attempts struct {
		n    int
		last time.Time
	}
	var (
		inflight = make(map[string]*attempts)
		results  = make(chan result, 64)
		backoff  = n.bmin
		joined   = len(n.seeds) == 0
		lastWarn time.Time
		wasAlone bool
	)
	t := time.NewTimer(0)
	defer t.Stop()
	for {
		select {
		case <-n.stop:
			return
		case r := <-results:
			if a := inflight[r.addr]; a != nil {
				if a.n--; a.n == 0 {
					delete(inflight, r.addr)
				}
			}
			if r.ok {
				joined, backoff = true, n.bmin
			}
			continue
		case <-t.C:
		}
		members := n.ml.NumMembers()
		alone := members == 1 && n.expect > 1
		switch {
		case alone && time.Since(lastWarn) >= aloneWarning:
			n.logger.Warn("the witness is alone in the gossip cluster: it cannot compare checkpoints with its peers; rejoining",
				"expected", n.expect, "seeds", n.seeds)
			lastWarn, wasAlone = time.Now(), true
		case !alone && wasAlone:
			n.logger.Info("the witness rejoined the gossip cluster", "members", members, "expected", n.expect)
			wasAlone, lastWarn = false, time.Time{}
		}
		if joined && members >= n.expect {
			backoff = n.bmin
			t.Reset(n.bmax)
			continue
		}
		for _, a := range n.rejoinAddrs(!joined) {
			at := inflight[a]
			if at == nil {
				at = new(attempts)
				inflight[a] = at
			}
			if at.n > 0 && (at.n >= maxJoinsInFlight || time.Since(at.last) < n.bmax) {
				continue
			}
			at.n++
			at.last = time.Now()
			go func() {
				_, err := n.ml.Join([]string{a})
				if err == nil {
					n.joins.WithLabelValues("ok").Inc()
				} else {
					n.joins.WithLabelValues("failed").Inc()
					n.logger.Debug("couldn't join a gossip member", "addr", a, "error", err)
				}
				select {
				case results <- result{a, err == nil}:
				case <-n.stop:
				}
			}()
		}
		// A join that succeeds resets the backoff.
		backoff = min(2*backoff, n.bmax)
		t.Reset(backoff)
	}
}

// rejoinAddrs returns the addresses to join: the seeds (all of them until
// the first join, then those that are not members), and the failed
// members' addresses that are not members now.
func (n *Node) rejoinAddrs(all bool) []string {
	live := make(map[string]bool)
	n.mu.Lock()
	for _, a := range n.live {
		live[a] = true
	}
	n.mu.Unlock()
	var out []string
	for _, s := range n.seeds {
		if all || !live[s] && !n.resolvesToMember(s, live) {
			out = append(out, s)
		}
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	for a, when := range n.failed {
		switch {
		case time.Since(when) > failedFor:
			delete(n.failed, a)
		case !live[a] && !slices.Contains(out, a):
			out = append(out, a)
		}
	}
	return out
}

// resolvesToMember reports whether the seed host:port resolves to the
// address of a member.
func (n *Node) resolvesToMember(seed string, live map[string]bool) bool {
	host, port, err := net.SplitHostPort(seed)
	if err != nil {
		return false
	}
	if net.ParseIP(host) != nil {
		return live[net.JoinHostPort(host, port)]
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	ips, err := net.DefaultResolver.LookupHost(ctx, host)
	if err != nil {
		return false
	}
	return slices.ContainsFunc(ips, func(ip string) bool { return live[net.JoinHostPort(ip, port)] })
}

// run checks the received messages, one at a time, those of the high
// queue first.
func (n *Node) run() {
	defer close(n.done)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() {
		select {
		case <-n.stop:
			cancel()
		case <-ctx.Done():
		}
	}()
	for {
		select {
		case <-n.stop:
			return
		case msg := <-n.high:
			n.handle(ctx, msg)
			continue
		default:
		}
		select {
		case <-n.stop:
			return
		case msg := <-n.high:
			n.handle(ctx, msg)
		case msg := <-n.low:
			n.handle(ctx, msg)
		}
	}
}

func (n *Node) handle(ctx context.Context, msg []byte) {
	typ, body := msg[0], msg[1:]
	var err error
	label := typeName(typ)
	switch typ {
	case typeCheckpoint, typeOwn:
		_, err = n.w.Observe(ctx, body, true)
	case typeEvidence:
		_, err = n.w.AddEvidence(ctx, body)
	}
	result := "accepted"
	switch {
	case err == nil:
	case errors.Is(err, witness.ErrUnknownLog):
		result = "unknown_log"
	case errors.Is(err, witness.ErrUntrusted):
		result = "untrusted"
	case errors.Is(err, witness.ErrNotSigned), errors.Is(err, witness.ErrBadRequest), errors.Is(err, api.ErrInvalidEvidence):
		result = "invalid"
	default:
		result = "error"
		n.logger.Warn("couldn't handle a gossip message", "type", label, "error", err)
	}
	if err != nil {
		n.logger.Debug("ignored a gossip message", "type", label, "result", result, "error", err)
	}
	n.messages.WithLabelValues(label, result).Inc()
}

// duplicate reports whether msg was handed to run in the last
// duplicateWindow or so, and remembers it.
func (n *Node) duplicate(msg []byte) bool {
	h := sha256.Sum256(msg)
	n.mu.Lock()
	defer n.mu.Unlock()
	if time.Since(n.seenSince) > duplicateWindow || len(n.seen[0]) >= 4*queueLength {
		n.seen[1], n.seen[0] = n.seen[0], make(map[[32]byte]bool)
		n.seenSince = time.Now()
	}
	if n.seen[0][h] || n.seen[1][h] {
		return true
	}
	n.seen[0][h] = true
	return false
}

// enqueue hands a message to run, copying it, unless it is malformed, a
// duplicate of a recent one, or its queue is full. Own checkpoints and
// push/pull state (fromState) go to the high queue. If wait, it waits for
// room up to a second.
func (n *Node) enqueue(msg []byte, fromState, wait bool) {
	if len(msg) < 2 || !slices.Contains([]byte{typeCheckpoint, typeOwn, typeEvidence}, msg[0]) ||
		msg[0] != typeEvidence && len(msg) > 1+maxCheckpointMessage ||
		msg[0] == typeEvidence && len(msg) > 1+api.MaxEvidenceSize {
		n.messages.WithLabelValues("unknown", "invalid").Inc()
		return
	}
	if n.duplicate(msg) {
		n.messages.WithLabelValues(typeName(msg[0]), "duplicate").Inc()
		return
	}
	msg = bytes.Clone(msg)
	q := n.low
	if fromState || msg[0] == typeOwn {
		q = n.high
	}
	if wait {
		t := time.NewTimer(time.Second)
		defer t.Stop()
		select {
		case q <- msg:
			return
		case <-n.stop:
			return
		case <-t.C:
		}
	} else {
		select {
		case q <- msg:
			return
		default:
		}
	}
	n.forget(msg)
	n.messages.WithLabelValues(typeName(msg[0]), "dropped").Inc()
}

// forget forgets a message that was dropped, so that it is handled when
// it comes again.
func (n *Node) forget(msg []byte) {
	h := sha256.Sum256(msg)
	n.mu.Lock()
	defer n.mu.Unlock()
	delete(n.seen[0], h)
	delete(n.seen[1], h)
}

func typeName(t byte) string {
	switch t {
	case typeEvidence:
		return "evidence"
	case typeOwn:
		return "own"
	default:
		return "checkpoint"
	}
}

// AnnounceCheckpoint implements witness.Announcer: the checkpoint replaces
// any queued one of its origin and kind, so that the witness's newest
// view (which a client may have shown it) never pushes out the checkpoint
// it cosigned.
func (n *Node) AnnounceCheckpoint(origin string, signed []byte, own bool) {
	typ := byte(typeCheckpoint)
	if own {
		typ = typeOwn
	}
	n.queue.QueueBroadcast(&broadcast{name: string(typ) + "/" + origin, msg: append([]byte{typ}, signed...)})
}

// AnnounceEvidence implements witness.Announcer. Evidence too large for a
// gossip packet is sent over TCP to every member instead.
func (n *Node) AnnounceEvidence(origin string, evidence []byte) {
	msg := append([]byte{typeEvidence}, evidence...)
	e, err := api.ParseEvidence(evidence)
	if err != nil {
		return
	}
	if len(msg) <= maxBroadcast {
		n.queue.QueueBroadcast(&broadcast{name: "e/" + e.ID(), msg: msg})
		return
	}
	go func() {
		for _, m := range n.ml.Members() {
			if m.Name == n.name {
				continue
			}
			if err := n.ml.SendReliable(m, msg); err != nil {
				n.logger.Warn("couldn't send evidence to a member", "member", m.Name, "error", err)
			}
		}
	}()
}

// maxBroadcast bounds a message in the broadcast queue, to fit a UDP
// gossip packet (memberlist's UDPBufferSize is 1400 by default) with
// memberlist's framing and encryption overhead.
const maxBroadcast = 1200

// broadcast is a queued message. Its name is per kind and origin for
// checkpoints, so a newer one invalidates the older, and per evidence ID
// for evidence.
type broadcast struct {
	name string
	msg  []byte
}

var _ memberlist.NamedBroadcast = (*broadcast)(nil)

func (b *broadcast) Invalidates(other memberlist.Broadcast) bool {
	o, ok := other.(*broadcast)
	return ok && o.name == b.name
}
func (b *broadcast) Name() string    { return b.name }
func (b *broadcast) Message() []byte { return b.msg }
func (b *broadcast) Finished()       {}

// delegate adapts the Node to memberlist.Delegate.
type delegate struct{ n *Node }

var _ memberlist.Delegate = delegate{}

func (d delegate) NodeMeta(limit int) []byte { return nil }

func (d delegate) NotifyMsg(b []byte) { d.n.enqueue(b, false, false) }

func (d delegate) GetBroadcasts(overhead, limit int) [][]byte {
	return d.n.queue.GetBroadcasts(overhead, limit)
}

// LocalState is the witness's state: its node name, then its checkpoints
// (its own first), then its evidence, at most maxStateEvidence of it; a
// record that does not fit in maxState is left out.
func (d delegate) LocalState(join bool) []byte {
	d.n.stateMu.RLock()
	defer d.n.stateMu.RUnlock()
	if d.n.closed {
		return nil
	}
	checkpoints, evidence := d.n.w.GossipState(context.Background())
	var b []byte
	add := func(typ byte, body []byte, limit int) bool {
		if len(b)+5+len(body) > limit {
			return false
		}
		b = append(b, typ)
		b = binary.BigEndian.AppendUint32(b, uint32(len(body)))
		b = append(b, body...)
		return true
	}
	add(typeNodeName, []byte(d.n.name), maxState)
	for _, c := range checkpoints {
		typ := byte(typeCheckpoint)
		if c.Own {
			typ = typeOwn
		}
		add(typ, c.Signed, maxState)
	}
	limit := min(maxState, len(b)+maxStateEvidence)
	for _, e := range evidence {
		add(typeEvidence, e, limit)
	}
	return b
}

func (d delegate) MergeRemoteState(buf []byte, join bool) {
	if len(buf) > maxState {
		d.n.messages.WithLabelValues("state", "invalid").Inc()
		return
	}
	for first := true; len(buf) > 0; first = false {
		if len(buf) < 5 || uint64(len(buf)-5) < uint64(binary.BigEndian.Uint32(buf[1:])) {
			d.n.messages.WithLabelValues("state", "invalid").Inc()
			return
		}
		l := int(binary.BigEndian.Uint32(buf[1:]))
		typ, body := buf[0], buf[5:5+l]
		buf = buf[5+l:]
		if typ == typeNodeName {
			if first {
				d.n.exchanged(string(body))
			}
			continue
		}
		d.n.enqueue(append([]byte{typ}, body...), true, true)
	}
}

// exchanged records a push/pull state received from the member named
// name, if it is a member.
func (n *Node) exchanged(name string) {
	now := time.Now()
	n.mu.Lock()
	defer n.mu.Unlock()
	if _, ok := n.live[name]; !ok {
		return
	}
	if _, ok := n.lastExchange[name]; !ok && len(n.lastExchange) >= maxExchangePeers {
		return
	}
	n.lastExchange[name] = now
	n.exchanges.WithLabelValues(name).Set(float64(now.UnixNano()) / 1e9)
}

// events adapts the Node to memberlist.EventDelegate: it remembers the
// addresses of failed members, to rejoin them.
type events struct{ n *Node }

var _ memberlist.EventDelegate = events{}

// memberlist calls them with its lock held: m may be read here only.
func (e events) NotifyJoin(m *memberlist.Node) {
	e.n.mu.Lock()
	defer e.n.mu.Unlock()
	e.n.live[m.Name] = m.Address()
	delete(e.n.failed, m.Address())
}

func (e events) NotifyLeave(m *memberlist.Node) {
	e.n.mu.Lock()
	defer e.n.mu.Unlock()
	delete(e.n.live, m.Name)
	if m.State == memberlist.StateDead && len(e.n.failed) < maxFailed {
		e.n.failed[m.Address()] = time.Now()
	}
	if m.State == memberlist.StateLeft {
		delete(e.n.lastExchange, m.Name)
		e.n.exchanges.DeleteLabelValues(m.Name)
	}
}

func (e events) NotifyUpdate(m *memberlist.Node) {
	e.n.mu.Lock()
	defer e.n.mu.Unlock()
	e.n.live[m.Name] = m.Address()
}

// slogWriter turns memberlist's log lines ("[LEVEL] memberlist: …") into
// structured logs.
type slogWriter struct{ l *slog.Logger }

var _ io.Writer = slogWriter{}

func (w slogWriter) Write(p []byte) (int, error) {
	line := string(bytes.TrimSpace(p))
	level := slog.LevelDebug
	for prefix, l := range map[string]slog.Level{"[ERR]": slog.LevelError, "[WARN]": slog.LevelWarn, "[INFO]": slog.LevelInfo} {
		if bytes.Contains(p, []byte(prefix)) {
			level = l
		}
	}
	w.l.Log(context.Background(), level, line)
	return len(p), nil
}
