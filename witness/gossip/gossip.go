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
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
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
	typeCheckpoint = 'c'
	typeEvidence   = 'e'
)

// Bounds.
const (
	// maxCheckpointMessage bounds a gossiped checkpoint.
	maxCheckpointMessage = 64 << 10
	// maxState bounds a push/pull state: records past it are left out.
	maxState = 8 << 20
	// queueLength bounds the messages waiting to be checked; more are
	// dropped (and counted).
	queueLength = 1024
)

// Config configures a Node.
type Config struct {
	// Listen is the host:port memberlist binds, for TCP and UDP. Port 0
	// picks a free port. Required.
	Listen string
	// Join are host:port addresses of members to join. Optional.
	Join []string
	// SecretKey, if set, encrypts and authenticates the gossip traffic
	// (memberlist's AES-GCM keyring): 16, 24 or 32 bytes, the same for
	// every member.
	SecretKey []byte
	// NodeName is the memberlist node name, unique in the cluster.
	// Default: the witness's name. It is not trusted for anything.
	NodeName string
	// Logger receives structured logs. Default: slog.Default().
	Logger *slog.Logger
	// Registerer, if set, receives candor_witness_gossip_messages_total.
	Registerer prometheus.Registerer
	// Tune, if set, adjusts the memberlist configuration (a
	// memberlist.DefaultLANConfig) before it is used, for example its
	// intervals in tests.
	Tune func(*memberlist.Config)
}

// Node is a witness's gossip node.
type Node struct {
	w      *witness.Witness
	ml     *memberlist.Memberlist
	queue  *memberlist.TransmitLimitedQueue
	logger *slog.Logger
	work   chan []byte
	stop   chan struct{}
	done   chan struct{}

	messages *prometheus.CounterVec

	closeOnce sync.Once
}

// Start starts the gossip node of w, joins cfg.Join, and sets itself as
// w's Announcer. Close stops it.
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
	n := &Node{
		w:      w,
		logger: cfg.Logger,
		work:   make(chan []byte, queueLength),
		stop:   make(chan struct{}),
		done:   make(chan struct{}),
		messages: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "candor_witness_gossip_messages_total",
			Help: "Gossip messages received, by type (checkpoint, evidence) and result (accepted, unknown_log, untrusted, invalid, dropped, error).",
		}, []string{"type", "result"}),
	}
	if cfg.Registerer != nil {
		if err := cfg.Registerer.Register(n.messages); err != nil {
			return nil, fmt.Errorf("couldn't register the gossip metrics: %w", err)
		}
	}
	mc := memberlist.DefaultLANConfig()
	mc.Name = cfg.NodeName
	if mc.Name == "" {
		mc.Name = w.Name()
	}
	mc.BindAddr = host
	mc.BindPort = int(p)
	mc.AdvertisePort = 0
	mc.SecretKey = cfg.SecretKey
	mc.Delegate = delegate{n}
	mc.LogOutput = slogWriter{cfg.Logger.With("component", "memberlist")}
	if cfg.Tune != nil {
		cfg.Tune(mc)
	}
	n.queue = &memberlist.TransmitLimitedQueue{RetransmitMult: mc.RetransmitMult}
	go n.run()
	ml, err := memberlist.Create(mc)
	if err != nil {
		close(n.stop)
		<-n.done
		return nil, fmt.Errorf("gossip: couldn't start memberlist on %s: %w", cfg.Listen, err)
	}
	n.ml = ml
	n.queue.NumNodes = ml.NumMembers
	w.SetAnnouncer(n)
	if len(cfg.Join) > 0 {
		if _, err := ml.Join(cfg.Join); err != nil {
			// Not fatal: the members may start later, and join us.
			n.logger.Warn("couldn't join any gossip member yet", "join", cfg.Join, "error", err)
		}
	}
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
		err = n.ml.Leave(timeout)
		if serr := n.ml.Shutdown(); err == nil {
			err = serr
		}
		close(n.stop)
		<-n.done
	})
	return err
}

// run checks the received messages, one at a time.
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
		case msg := <-n.work:
			n.handle(ctx, msg)
		}
	}
}

func (n *Node) handle(ctx context.Context, msg []byte) {
	typ, body := msg[0], msg[1:]
	var err error
	label := "checkpoint"
	switch typ {
	case typeCheckpoint:
		_, err = n.w.Observe(ctx, body, true)
	case typeEvidence:
		label = "evidence"
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

// enqueue hands a message to run, copying it, unless it is malformed or
// the queue is full. If wait, it waits for room up to a second.
func (n *Node) enqueue(msg []byte, wait bool) {
	if len(msg) < 2 || (msg[0] != typeCheckpoint && msg[0] != typeEvidence) ||
		msg[0] == typeCheckpoint && len(msg) > 1+maxCheckpointMessage ||
		msg[0] == typeEvidence && len(msg) > 1+api.MaxEvidenceSize {
		n.messages.WithLabelValues("unknown", "invalid").Inc()
		return
	}
	msg = bytes.Clone(msg)
	if wait {
		t := time.NewTimer(time.Second)
		defer t.Stop()
		select {
		case n.work <- msg:
			return
		case <-n.stop:
			return
		case <-t.C:
		}
	} else {
		select {
		case n.work <- msg:
			return
		default:
		}
	}
	n.messages.WithLabelValues(typeName(msg[0]), "dropped").Inc()
}

func typeName(t byte) string {
	if t == typeEvidence {
		return "evidence"
	}
	return "checkpoint"
}

// AnnounceCheckpoint implements witness.Announcer: the checkpoint replaces
// any queued one of its origin.
func (n *Node) AnnounceCheckpoint(origin string, signed []byte) {
	n.queue.QueueBroadcast(&broadcast{name: "c/" + origin, msg: append([]byte{typeCheckpoint}, signed...)})
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
			if m.Name == n.ml.LocalNode().Name {
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

// broadcast is a queued message. Its name is per origin for checkpoints,
// so a newer one invalidates the older, and per evidence ID for evidence.
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

func (d delegate) NotifyMsg(b []byte) { d.n.enqueue(b, false) }

func (d delegate) GetBroadcasts(overhead, limit int) [][]byte {
	return d.n.queue.GetBroadcasts(overhead, limit)
}

func (d delegate) LocalState(join bool) []byte {
	checkpoints, evidence := d.n.w.GossipState()
	var b []byte
	add := func(typ byte, body []byte) {
		if len(b)+5+len(body) > maxState {
			return
		}
		b = append(b, typ)
		b = binary.BigEndian.AppendUint32(b, uint32(len(body)))
		b = append(b, body...)
	}
	for _, e := range evidence {
		add(typeEvidence, e)
	}
	for _, c := range checkpoints {
		add(typeCheckpoint, c)
	}
	return b
}

func (d delegate) MergeRemoteState(buf []byte, join bool) {
	if len(buf) > maxState {
		d.n.messages.WithLabelValues("state", "invalid").Inc()
		return
	}
	for len(buf) > 0 {
		if len(buf) < 5 || uint64(len(buf)-5) < uint64(binary.BigEndian.Uint32(buf[1:])) {
			d.n.messages.WithLabelValues("state", "invalid").Inc()
			return
		}
		l := int(binary.BigEndian.Uint32(buf[1:]))
		msg := append([]byte{buf[0]}, buf[5:5+l]...)
		buf = buf[5+l:]
		d.n.enqueue(msg, true)
	}
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
