package log

// WitnessingReadiness is what a Witnessing may also implement to take
// part in the log's readiness: /readyz fails while Ready does, and
// /readyz?verbose shows Status.
type WitnessingReadiness interface {
	// Ready returns nil while cosigned checkpoints are published in time,
	// else an error, wrapping ErrUnavailable, that says what is late and
	// which witnesses are failing.
	Ready() error
	// Status describes the witnesses; it is marshalled as JSON.
	Status() any
}

// ReadyStatus is the reply of GET /readyz?verbose.
type ReadyStatus struct {
	Ready bool `json:"ready"`
	// Error says why the log is not ready.
	Error string `json:"error,omitempty"`
	// Witnessing is the Witnessing's Status, if it has one.
	Witnessing any `json:"witnessing,omitempty"`
}

// ReadyStatus returns what Ready says, with the Witnessing's status.
func (l *Log) ReadyStatus() ReadyStatus {
	s := ReadyStatus{Ready: true}
	if err := l.Ready(); err != nil {
		s.Ready, s.Error = false, err.Error()
	}
	if r, ok := l.witnessing.(WitnessingReadiness); ok {
		s.Witnessing = r.Status()
	}
	return s
}
