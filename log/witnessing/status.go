package witnessing

import (
	"fmt"
	"strings"
	"time"

	"github.com/candorlog/candor/log"
)

// health is what the log knows of a witness from its last requests.
type health struct {
	failures    int // requests that failed in a row
	lastError   string
	lastErrorAt time.Time
	lastOK      time.Time
}

// recordHealth records the outcome of a request to w (err nil: success).
func (c *Collector) recordHealth(w *witness, err error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if err == nil {
		w.health.failures = 0
		w.health.lastOK = time.Now()
		return
	}
	w.health.failures++
	w.health.lastError = err.Error()
	w.health.lastErrorAt = time.Now()
}

// Ready returns nil while cosigned checkpoints are published in time: no
// committed entry has waited longer than ReadyWait for a published
// cosigned checkpoint. Else the error wraps log.ErrUnavailable and says
// how long the log has waited and which witnesses are failing.
func (c *Collector) Ready() error {
	lag := time.Duration(c.lag() * float64(time.Second))
	if lag <= c.readyWait {
		return nil
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	var failing []string
	for _, w := range c.witnesses {
		if w.health.failures > 0 {
			failing = append(failing, fmt.Sprintf("%s (%s)", w.name, w.health.lastError))
		}
	}
	msg := "none"
	if len(failing) > 0 {
		msg = strings.Join(failing, "; ")
	}
	return fmt.Errorf("%w: no cosigned checkpoint published for %s, longer than %s; failing witnesses: %s",
		log.ErrUnavailable, lag.Round(time.Millisecond), c.readyWait, msg)
}

// Status is the state of the witnesses as /readyz?verbose shows it.
type Status struct {
	// LagSeconds is how long the oldest committed entry not in the
	// published checkpoint has waited; 0 if none waits.
	LagSeconds float64 `json:"lagSeconds"`
	// ReadyWaitSeconds is the longest LagSeconds while ready.
	ReadyWaitSeconds float64 `json:"readyWaitSeconds"`
	// PublishedSize is the size of the published cosigned checkpoint, -1
	// if none.
	PublishedSize int64 `json:"publishedSize"`
	// CommittedSize is the size of the newest committed checkpoint.
	CommittedSize uint64          `json:"committedSize"`
	Witnesses     []WitnessStatus `json:"witnesses"`
}

// WitnessStatus is one witness of the policy that has a URL.
type WitnessStatus struct {
	Name string `json:"name"`
	URL  string `json:"url"`
	// Failing is true while its last request failed.
	Failing bool `json:"failing"`
	// Failures counts the requests that failed in a row.
	Failures    int        `json:"failures"`
	LastError   string     `json:"lastError,omitempty"`
	LastErrorAt *time.Time `json:"lastErrorAt,omitempty"`
	LastOK      *time.Time `json:"lastOK,omitempty"`
}

// Status returns the state of the witnesses, a Status.
func (c *Collector) Status() any {
	lag := c.lag()
	c.mu.Lock()
	defer c.mu.Unlock()
	s := Status{LagSeconds: lag, ReadyWaitSeconds: c.readyWait.Seconds(), PublishedSize: c.pubSize, Witnesses: []WitnessStatus{}}
	if c.latest != nil {
		s.CommittedSize = c.latest.size
	}
	for _, w := range c.witnesses {
		ws := WitnessStatus{Name: w.name, URL: w.url, Failing: w.health.failures > 0, Failures: w.health.failures, LastError: w.health.lastError}
		if t := w.health.lastErrorAt; !t.IsZero() {
			ws.LastErrorAt = &t
		}
		if t := w.health.lastOK; !t.IsZero() {
			ws.LastOK = &t
		}
		s.Witnesses = append(s.Witnesses, ws)
	}
	return s
}
