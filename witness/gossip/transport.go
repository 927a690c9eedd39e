package gossip

import (
	"fmt"
	"log"
	"net"
	"strings"
	"sync"
	"time"

	"github.com/hashicorp/memberlist"
	"golang.org/x/time/rate"
)

// Default per-source limits of the transport. An honest member sends a
// node a few gossip packets a second (memberlist's LAN defaults: probes
// every second, gossip to 3 members every 200 ms) and opens a stream for
// each push/pull exchange (every 30 s) and each piece of evidence too
// large for a packet; the limits are far above that, and far below what
// one host can send.
const (
	DefaultPacketRate  = 200 // packets a second, per source address
	DefaultStreamRate  = 10  // streams a second, per source address
	limitBurstFactor   = 2   // a source may send this many seconds' worth at once
	maxLimitedSources  = 4096
	sourceIdleDuration = 5 * time.Minute
)

// limitedTransport is the node's memberlist transport: a NetTransport whose
// outgoing TCP connections leave from the node's bind address (so that
// the members it talks to see the same source address for its packets and
// its streams), and which drops the packets and streams of a source
// address past its rate (a member that floods costs the node little, and
// the others' gossip still arrives).
type limitedTransport struct {
	*memberlist.NetTransport
	local   *net.TCPAddr // nil: the kernel chooses
	packets chan *memberlist.Packet
	streams chan net.Conn
	stop    chan struct{}
	once    sync.Once

	packetRate, streamRate rate.Limit
	limited                func(kind string) // counts what was dropped

	mu      sync.Mutex
	sources map[string]*sourceLimit
	swept   time.Time
}

type sourceLimit struct {
	packets, streams *rate.Limiter
	seen             time.Time
}

var _ memberlist.NodeAwareTransport = (*limitedTransport)(nil)

// newLimitedTransport binds a NetTransport on host and port (0 picks a
// free port, the same for TCP and UDP).
func newLimitedTransport(host string, port int, packetRate, streamRate float64, limited func(string), logger *log.Logger) (*limitedTransport, error) {
	nc := &memberlist.NetTransportConfig{BindAddrs: []string{host}, BindPort: port, Logger: logger}
	var nt *memberlist.NetTransport
	var err error
	// Binding TCP and UDP to one free port races with other programs:
	// retry a few times, as memberlist does.
	for range 10 {
		if nt, err = memberlist.NewNetTransport(nc); err == nil || port != 0 || !strings.Contains(err.Error(), "address already in use") {
			break
		}
	}
	if err != nil {
		return nil, fmt.Errorf("couldn't bind %s: %w", net.JoinHostPort(host, fmt.Sprint(port)), err)
	}
	t := &limitedTransport{
		NetTransport: nt,
		packets:      make(chan *memberlist.Packet),
		streams:      make(chan net.Conn),
		stop:         make(chan struct{}),
		packetRate:   rate.Limit(packetRate),
		streamRate:   rate.Limit(streamRate),
		limited:      limited,
		sources:      make(map[string]*sourceLimit),
	}
	if ip := net.ParseIP(host); ip != nil && !ip.IsUnspecified() {
		t.local = &net.TCPAddr{IP: ip}
	}
	go t.forwardPackets()
	go t.forwardStreams()
	return t, nil
}

// allow reports whether the source may send one more packet (or stream).
func (t *limitedTransport) allow(addr net.Addr, stream bool) bool {
	host := addr.String()
	if h, _, err := net.SplitHostPort(host); err == nil {
		host = h
	}
	now := time.Now()
	t.mu.Lock()
	defer t.mu.Unlock()
	if now.Sub(t.swept) > sourceIdleDuration || len(t.sources) >= maxLimitedSources {
		for k, s := range t.sources {
			if now.Sub(s.seen) > sourceIdleDuration || len(t.sources) >= maxLimitedSources {
				delete(t.sources, k)
			}
		}
		t.swept = now
	}
	s, ok := t.sources[host]
	if !ok {
		s = &sourceLimit{
			packets: rate.NewLimiter(t.packetRate, max(1, int(float64(t.packetRate)*limitBurstFactor))),
			streams: rate.NewLimiter(t.streamRate, max(1, int(float64(t.streamRate)*limitBurstFactor))),
		}
		t.sources[host] = s
	}
	s.seen = now
	if stream {
		return s.streams.AllowN(now, 1)
	}
	return s.packets.AllowN(now, 1)
}

func (t *limitedTransport) forwardPackets() {
	in := t.NetTransport.PacketCh()
	for {
		select {
		case p := <-in:
			if !t.allow(p.From, false) {
				t.limited("packet")
				continue
			}
			select {
			case t.packets <- p:
			case <-t.stop:
				return
			}
		case <-t.stop:
			return
		}
	}
}

func (t *limitedTransport) forwardStreams() {
	in := t.NetTransport.StreamCh()
	for {
		select {
		case c := <-in:
			if !t.allow(c.RemoteAddr(), true) {
				t.limited("stream")
				c.Close()
				continue
			}
			select {
			case t.streams <- c:
			case <-t.stop:
				c.Close()
				return
			}
		case <-t.stop:
			return
		}
	}
}

// PacketCh returns the packets within their source's limit.
func (t *limitedTransport) PacketCh() <-chan *memberlist.Packet { return t.packets }

// StreamCh returns the streams within their source's limit.
func (t *limitedTransport) StreamCh() <-chan net.Conn { return t.streams }

// DialTimeout dials addr from the node's bind address.
func (t *limitedTransport) DialTimeout(addr string, timeout time.Duration) (net.Conn, error) {
	d := net.Dialer{Timeout: timeout}
	if t.local != nil {
		d.LocalAddr = t.local
	}
	return d.Dial("tcp", addr)
}

// DialAddressTimeout dials addr from the node's bind address.
func (t *limitedTransport) DialAddressTimeout(addr memberlist.Address, timeout time.Duration) (net.Conn, error) {
	return t.DialTimeout(addr.Addr, timeout)
}

// Shutdown closes the listeners and stops forwarding.
func (t *limitedTransport) Shutdown() error {
	err := t.NetTransport.Shutdown()
	t.once.Do(func() { close(t.stop) })
	return err
}
