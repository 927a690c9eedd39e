package gossip

import (
	"bytes"
	"errors"
	"fmt"
	"log"
	"net"
	"sync"
	"time"

	"github.com/hashicorp/go-sockaddr"
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

// limitedTransport is the node's memberlist transport, on a TCP listener
// and a UDP socket of one port. It drops the packets and streams of a
// source address past its rate (a member that floods costs the node
// little, and the others' gossip still arrives): a packet is read into one
// buffer and copied only once it is within its source's rate, so a
// dropped packet costs a read and a lookup. Its outgoing TCP connections
// leave from the node's bind address, so that the members it talks to see
// the same source address for its packets and its streams.
type limitedTransport struct {
	tcp     *net.TCPListener
	udp     *net.UDPConn
	bind    net.IP
	port    int
	local   *net.TCPAddr // nil: the kernel chooses
	packets chan *memberlist.Packet
	streams chan net.Conn
	stop    chan struct{}
	once    sync.Once
	wg      sync.WaitGroup
	logger  *log.Logger

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

const (
	// maxPacket is the largest UDP packet the transport reads.
	maxPacket = 64 << 10
	// udpReadBuffer is the socket receive buffer the transport asks
	// for, as memberlist's own transport does; it takes less if the
	// system allows less.
	udpReadBuffer = 2 << 20
)

// newLimitedTransport listens on host, an IP address or "" for all of
// them, and port (0 picks a free port, the same for TCP and UDP).
func newLimitedTransport(host string, port int, packetRate, streamRate float64, limited func(string), logger *log.Logger) (*limitedTransport, error) {
	ip := net.ParseIP(host)
	switch {
	case host == "":
		ip = net.IPv4zero
	case ip == nil:
		return nil, fmt.Errorf("couldn't listen on %q: not an IP address", host)
	}
	t := &limitedTransport{
		bind:       ip,
		packets:    make(chan *memberlist.Packet),
		streams:    make(chan net.Conn),
		stop:       make(chan struct{}),
		logger:     logger,
		packetRate: rate.Limit(packetRate),
		streamRate: rate.Limit(streamRate),
		limited:    limited,
		sources:    make(map[string]*sourceLimit),
	}
	// Binding TCP and UDP to one free port races with other programs:
	// retry a few times, as memberlist does.
	var err error
	for range 10 {
		if err = t.listen(ip, port); err == nil || port != 0 {
			break
		}
	}
	if err != nil {
		return nil, fmt.Errorf("couldn't bind %s: %w", net.JoinHostPort(host, fmt.Sprint(port)), err)
	}
	if !ip.IsUnspecified() {
		t.local = &net.TCPAddr{IP: ip}
	}
	for size := udpReadBuffer; size >= 64<<10; size /= 2 {
		if t.udp.SetReadBuffer(size) == nil {
			break
		}
	}
	t.wg.Add(2)
	go t.readPackets()
	go t.acceptStreams()
	return t, nil
}

// listen binds the TCP listener, then the UDP socket on its port.
func (t *limitedTransport) listen(ip net.IP, port int) error {
	tl, err := net.ListenTCP("tcp", &net.TCPAddr{IP: ip, Port: port})
	if err != nil {
		return err
	}
	port = tl.Addr().(*net.TCPAddr).Port
	ul, err := net.ListenUDP("udp", &net.UDPAddr{IP: ip, Port: port})
	if err != nil {
		tl.Close()
		return err
	}
	t.tcp, t.udp, t.port = tl, ul, port
	return nil
}

// GetAutoBindPort returns the port the transport listens on.
func (t *limitedTransport) GetAutoBindPort() int { return t.port }

// FinalAdvertiseAddr returns the address the node tells the others: ip
// and port if set, else the bind address, or for an unspecified one a
// private address of the host, as memberlist's own transport does.
func (t *limitedTransport) FinalAdvertiseAddr(ip string, port int) (net.IP, int, error) {
	if ip != "" {
		a := net.ParseIP(ip)
		if a == nil {
			return nil, 0, fmt.Errorf("couldn't parse the advertise address %q", ip)
		}
		if a4 := a.To4(); a4 != nil {
			a = a4
		}
		return a, port, nil
	}
	if !t.bind.IsUnspecified() {
		return t.bind, t.port, nil
	}
	private, err := sockaddr.GetPrivateIP()
	if err != nil {
		return nil, 0, fmt.Errorf("couldn't find a private address to advertise: %w", err)
	}
	if private == "" {
		return nil, 0, errors.New("no private address to advertise: listen on an address, not on every address")
	}
	return net.ParseIP(private), t.port, nil
}

// WriteTo sends the packet b to addr (host:port).
func (t *limitedTransport) WriteTo(b []byte, addr string) (time.Time, error) {
	ua, err := net.ResolveUDPAddr("udp", addr)
	if err != nil {
		return time.Time{}, err
	}
	_, err = t.udp.WriteTo(b, ua)
	return time.Now(), err
}

// WriteToAddress sends the packet b to addr.
func (t *limitedTransport) WriteToAddress(b []byte, addr memberlist.Address) (time.Time, error) {
	return t.WriteTo(b, addr.Addr)
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

// readPackets reads the UDP packets into one buffer and hands a copy of
// those within their source's rate to memberlist.
func (t *limitedTransport) readPackets() {
	defer t.wg.Done()
	buf := make([]byte, maxPacket)
	for {
		n, from, err := t.udp.ReadFromUDP(buf)
		now := time.Now()
		if err != nil {
			if t.stopped() {
				return
			}
			t.logger.Printf("[ERR] gossip: couldn't read a UDP packet: %v", err)
			continue
		}
		if n < 1 { // memberlist's own transport drops these too
			continue
		}
		if !t.allow(from, false) {
			t.limited("packet")
			continue
		}
		p := &memberlist.Packet{Buf: bytes.Clone(buf[:n]), From: from, Timestamp: now}
		select {
		case t.packets <- p:
		case <-t.stop:
			return
		}
	}
}

// acceptStreams accepts the TCP connections and hands those within their
// source's rate to memberlist.
func (t *limitedTransport) acceptStreams() {
	defer t.wg.Done()
	var backoff time.Duration
	for {
		c, err := t.tcp.AcceptTCP()
		if err != nil {
			if t.stopped() {
				return
			}
			// Out of file descriptors, for example: wait a little.
			backoff = min(max(2*backoff, 5*time.Millisecond), time.Second)
			t.logger.Printf("[ERR] gossip: couldn't accept a TCP connection: %v", err)
			select {
			case <-time.After(backoff):
			case <-t.stop:
				return
			}
			continue
		}
		backoff = 0
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
	}
}

func (t *limitedTransport) stopped() bool {
	select {
	case <-t.stop:
		return true
	default:
		return false
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

// Shutdown closes the listeners and waits for their loops to end.
func (t *limitedTransport) Shutdown() error {
	var err error
	t.once.Do(func() {
		close(t.stop)
		err = errors.Join(t.tcp.Close(), t.udp.Close())
		t.wg.Wait()
	})
	return err
}
