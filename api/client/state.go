package client

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sync"

	"github.com/candorlog/candor/internal/atomicfile"
)

// ErrStateChanged is returned by State.Swap when the stored checkpoint is
// not the one the caller expected: another Update stored one meanwhile.
var ErrStateChanged = errors.New("client state changed concurrently")

// State keeps the last verified checkpoint of each log, so that a Verifier
// refuses to go backwards or sideways across calls and restarts. It holds
// what the Verifier stored, and the Verifier checks the log's signature of
// it again when it reads it. Implementations are safe for concurrent use.
type State interface {
	// Load returns the signed checkpoint stored for origin, or nil and no
	// error if there is none.
	Load(ctx context.Context, origin string) ([]byte, error)
	// Swap stores new for origin if the stored checkpoint is old (nil for
	// none), and fails with an error wrapping ErrStateChanged otherwise.
	// When it returns nil, new is durable.
	Swap(ctx context.Context, origin string, old, new []byte) error
}

// MemoryState is a State in memory, forgotten when the process ends.
type MemoryState struct {
	mu  sync.Mutex
	cps map[string][]byte
}

var _ State = (*MemoryState)(nil)

// NewMemoryState returns an empty MemoryState.
func NewMemoryState() *MemoryState {
	return &MemoryState{cps: make(map[string][]byte)}
}

// Load implements State.
func (s *MemoryState) Load(ctx context.Context, origin string) ([]byte, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return bytes.Clone(s.cps[origin]), nil
}

// Swap implements State.
func (s *MemoryState) Swap(ctx context.Context, origin string, old, new []byte) error {
	if len(new) == 0 {
		return errors.New("client state: refusing to store an empty checkpoint")
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if cur, ok := s.cps[origin]; ok != (old != nil) || !bytes.Equal(cur, old) {
		return fmt.Errorf("couldn't store the checkpoint of %q: %w", origin, ErrStateChanged)
	}
	s.cps[origin] = bytes.Clone(new)
	return nil
}

// FileState is a State in one file, replaced atomically (and synced) at
// each Swap, so that it survives a crash and a restart. The file is JSON:
//
//	{"checkpoints": {"<origin>": "<signed checkpoint>", …}, …}
//
// where other keys hold other programs' state (LoadExtra, UpdateExtra).
//
// Every call reads the file again, so several FileStates of one file in a
// process see each other's writes; other processes must not write it.
type FileState struct {
	path string // absolute
}

var _ State = (*FileState)(nil)

// stateFile is the content of a FileState's file.
type stateFile struct {
	Checkpoints map[string]string `json:"checkpoints"`
}

// maxStateFile bounds a state file: a few thousand logs' checkpoints.
const maxStateFile = 64 << 20

// fileStates serializes the FileStates of one path in a process.
var fileStates sync.Map // path -> *sync.Mutex

// NewFileState returns the State kept in the file at path, which is
// created at the first Swap (with its directory) if it does not exist. It
// reads the file once, to fail early if it is not a state file.
func NewFileState(path string) (*FileState, error) {
	abs, err := filepath.Abs(path)
	if err != nil {
		return nil, fmt.Errorf("couldn't open the client state: %w", err)
	}
	s := &FileState{path: abs}
	if _, _, err := s.read(); err != nil {
		return nil, err
	}
	return s, nil
}

func (s *FileState) lock() func() {
	m, _ := fileStates.LoadOrStore(s.path, new(sync.Mutex))
	mu := m.(*sync.Mutex)
	mu.Lock()
	return mu.Unlock
}

// read returns the file's checkpoints, and all its top-level values;
// none if it does not exist.
func (s *FileState) read() (map[string]string, map[string]json.RawMessage, error) {
	all := map[string]json.RawMessage{}
	b, err := os.ReadFile(s.path)
	if errors.Is(err, fs.ErrNotExist) {
		return map[string]string{}, all, nil
	}
	if err != nil {
		return nil, nil, fmt.Errorf("couldn't read the client state: %w", err)
	}
	if len(b) > maxStateFile {
		return nil, nil, fmt.Errorf("couldn't read the client state: %s is larger than %d bytes", s.path, maxStateFile)
	}
	var f stateFile
	if err := json.Unmarshal(b, &f); err != nil {
		return nil, nil, fmt.Errorf("couldn't parse the client state in %s: %w", s.path, err)
	}
	if err := json.Unmarshal(b, &all); err != nil {
		return nil, nil, fmt.Errorf("couldn't parse the client state in %s: %w", s.path, err)
	}
	if f.Checkpoints == nil {
		f.Checkpoints = map[string]string{}
	}
	return f.Checkpoints, all, nil
}

// write replaces the file with all, synced.
func (s *FileState) write(all map[string]json.RawMessage) error {
	b, err := json.MarshalIndent(all, "", "  ")
	if err != nil {
		return fmt.Errorf("couldn't encode the client state: %w", err)
	}
	if err := atomicfile.Replace(s.path, append(b, '\n'), 0o600); err != nil {
		return fmt.Errorf("couldn't write the client state: %w", err)
	}
	return nil
}

// LoadExtra returns the value the file keeps under key besides the
// checkpoints (another program's state, such as a monitor's position),
// or nil if none.
func (s *FileState) LoadExtra(key string) (json.RawMessage, error) {
	if key == checkpointsKey {
		return nil, fmt.Errorf("client state: %q is the checkpoints' key", key)
	}
	unlock := s.lock()
	defer unlock()
	_, all, err := s.read()
	if err != nil {
		return nil, err
	}
	return all[key], nil
}

// UpdateExtra replaces the value under key with what update makes of it
// (nil if none), atomically and synced, keeping everything else: one
// read and one write of the file under its lock, so that two updates
// never lose each other's changes.
func (s *FileState) UpdateExtra(key string, update func(old json.RawMessage) (json.RawMessage, error)) error {
	if key == checkpointsKey {
		return fmt.Errorf("client state: %q is the checkpoints' key", key)
	}
	unlock := s.lock()
	defer unlock()
	_, all, err := s.read()
	if err != nil {
		return err
	}
	value, err := update(all[key])
	if err != nil {
		return err
	}
	all[key] = value
	return s.write(all)
}

const checkpointsKey = "checkpoints"

// Load implements State.
func (s *FileState) Load(ctx context.Context, origin string) ([]byte, error) {
	unlock := s.lock()
	defer unlock()
	cps, _, err := s.read()
	if err != nil {
		return nil, err
	}
	cp, ok := cps[origin]
	if !ok {
		return nil, nil
	}
	return []byte(cp), nil
}

// Swap implements State.
func (s *FileState) Swap(ctx context.Context, origin string, old, new []byte) error {
	if len(new) == 0 {
		return errors.New("client state: refusing to store an empty checkpoint")
	}
	unlock := s.lock()
	defer unlock()
	cps, all, err := s.read()
	if err != nil {
		return err
	}
	if cur, ok := cps[origin]; ok != (old != nil) || cur != string(old) {
		return fmt.Errorf("couldn't store the checkpoint of %q: %w", origin, ErrStateChanged)
	}
	cps[origin] = string(new)
	b, err := json.Marshal(cps)
	if err != nil {
		return fmt.Errorf("couldn't encode the client state: %w", err)
	}
	all[checkpointsKey] = b
	return s.write(all)
}
