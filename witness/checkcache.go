package witness

import (
	"bytes"
	"cmp"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"unicode"
	"unicode/utf8"

	"golang.org/x/mod/sumdb/note"
)

// What a gossiped checkpoint costs the witness.
//
// The witness network is open to any member of the gossip cluster (and
// POST /v1/gossip/checkpoint to anyone), and checking a signature is the
// one costly step of Observe. So that a hostile member costs little:
//
//   - the signature lines are read, and a note whose lines could not all
//     be used is refused (ErrBadRequest) before any signature is checked
//     (scanSignatures);
//   - only the first line of each trusted key (the log's, a peer's, the
//     witness's own) is ever checked, and lines of other keys never are;
//   - each (checkpoint body, signature) is checked once: its outcome is
//     remembered (checkCache.verify), so a message that adds lines to a
//     known one costs only the new lines;
//   - each message is opened once: its outcome, the view or the error, is
//     remembered under a hash of its body and its set of signature lines
//     (checkCache.message), so a replay, in any order of its lines, costs
//     a hash and a lookup.
//
// Both memories are bounded (two generations of at most a few thousand
// entries and a few MiB each): a flood of new messages evicts older
// outcomes, which then cost a verification again, never more memory.

// Bounds of the check cache, per generation: the cache holds at most
// twice as much.
const (
	maxCheckedMessages   = 2048
	maxCheckedBytes      = 4 << 20
	maxCheckedSignatures = 8192
)

// scannedLine is a signature line of a gossiped note: the key it names,
// and its signature (key ID and signature bytes) decoded.
type scannedLine struct {
	key sigKey
	raw []byte
}

// scanSignatures reads the signature lines of a gossiped note, block
// being what follows its first blank line, without checking any. It
// refuses a note whose lines could not all be used: one that note.Open
// would refuse as malformed (a line that is not "— <name> <base64>", a
// control character, more than maxServedSignatures lines), or that
// carries more than one line of a key that trusted reports true for.
//
// The refusal never hits an honest witness's view, whichever peers either
// witness trusts: a view carries the log's signatures as note.Open kept
// them (at most one per key), and the cosignatures checkpointView.merge
// kept (at most one per key), maxServedSignatures lines at most in all
// (checkpointView.signed). So no key has two lines on it, whether this
// witness trusts the key or not, and the lines of witnesses that the
// sender trusts and this witness does not are merely dropped, unchecked.
// A log signs a checkpoint once with its key, and its witnesses add one
// cosignature each. Only a note put together by someone else (two
// cosignatures by one witness at different times, a line repeated) is
// refused, and it could only be refused or cost checks for nothing.
func scanSignatures(block []byte, trusted func(sigKey) bool) ([]scannedLine, error) {
	if len(block) == 0 || block[len(block)-1] != '\n' {
		return nil, errors.New("the signature lines do not end in a newline")
	}
	if n := bytes.Count(block, []byte("\n")); n > maxServedSignatures {
		return nil, fmt.Errorf("%d signature lines, want at most %d", n, maxServedSignatures)
	}
	for i := 0; i < len(block); {
		if c := block[i]; c < utf8.RuneSelf {
			if c < 0x20 && c != '\n' {
				return nil, fmt.Errorf("control character at byte %d of the signature lines", i)
			}
			i++
			continue
		}
		r, size := utf8.DecodeRune(block[i:])
		if r == utf8.RuneError && size == 1 {
			return nil, fmt.Errorf("invalid UTF-8 at byte %d of the signature lines", i)
		}
		i += size
	}
	var lines []scannedLine
	var seen []sigKey // trusted keys
	for rest := block; len(rest) > 0; {
		line, after, _ := bytes.Cut(rest, []byte("\n"))
		rest = after
		l, ok := bytes.CutPrefix(line, []byte("— "))
		if !ok {
			return nil, fmt.Errorf("signature line %d does not start with an em dash and a space", len(lines))
		}
		name, b64, _ := bytes.Cut(l, []byte(" "))
		raw := make([]byte, base64.StdEncoding.DecodedLen(len(b64)))
		n, err := base64.StdEncoding.Decode(raw, b64)
		if err != nil || !validKeyName(string(name)) || n < 5 {
			return nil, fmt.Errorf("signature line %d is malformed", len(lines))
		}
		raw = raw[:n]
		k := sigKey{string(name), binary.BigEndian.Uint32(raw)}
		if trusted(k) {
			if slices.Contains(seen, k) {
				return nil, fmt.Errorf("more than one signature line of the key %s %08x", k.name, k.id)
			}
			seen = append(seen, k)
		}
		lines = append(lines, scannedLine{k, raw})
	}
	return lines, nil
}

// validKeyName reports whether note.Open accepts name in a signature line.
func validKeyName(name string) bool {
	return name != "" && utf8.ValidString(name) && !strings.Contains(name, "+") &&
		strings.IndexFunc(name, unicode.IsSpace) < 0
}

// messageKey identifies a gossiped note by its text and its set of
// signature lines in canonical form (name and decoded signature, sorted,
// without repeats): notes with the same key open the same, since
// note.Open drops repeated lines and scanSignatures refused the notes
// where the order of the lines could matter.
func messageKey(text []byte, lines []scannedLine) [sha256.Size]byte {
	lines = slices.Clone(lines)
	slices.SortFunc(lines, func(a, b scannedLine) int {
		return cmp.Or(strings.Compare(a.key.name, b.key.name), strings.Compare(string(a.raw), string(b.raw)))
	})
	h := sha256.New()
	var n [8]byte
	write := func(b []byte) {
		h.Write(binary.BigEndian.AppendUint64(n[:0], uint64(len(b))))
		h.Write(b)
	}
	write(text)
	for i, l := range lines {
		if i > 0 && l.key.name == lines[i-1].key.name && string(l.raw) == string(lines[i-1].raw) {
			continue
		}
		write([]byte(l.key.name))
		write(l.raw)
	}
	return [sha256.Size]byte(h.Sum(nil))
}

// checked is the outcome of opening a gossiped note.
type checked struct {
	view *checkpointView // not handed out: callers get clones
	err  error
}

// checkCache remembers the outcomes of signature checks and of opened
// gossiped notes. Its zero value is empty and ready. It is safe for
// concurrent use; checks run outside its lock, so two goroutines may
// check the same thing at once, which is only wasted work.
type checkCache struct {
	mu       sync.Mutex
	messages generations[[sha256.Size]byte, checked]
	sigs     generations[[sha256.Size]byte, bool]
}

// message returns a clone of the remembered outcome of the note with key.
func (c *checkCache) message(key [sha256.Size]byte) (*checkpointView, error, bool) {
	c.mu.Lock()
	o, ok := c.messages.get(key, maxCheckedMessages, maxCheckedBytes)
	c.mu.Unlock()
	if !ok {
		return nil, nil, false
	}
	return o.view.clone(), o.err, true
}

// addMessage remembers the outcome of opening the note signed with key.
// It keeps v, which the caller must not change or hand out.
func (c *checkCache) addMessage(key [sha256.Size]byte, signed []byte, v *checkpointView, err error) {
	// An error such as note.UnverifiedNoteError holds the note: count the
	// whole message whatever the outcome.
	cost := len(signed) + 256
	c.mu.Lock()
	c.messages.put(key, checked{v, err}, cost, maxCheckedMessages, maxCheckedBytes)
	c.mu.Unlock()
}

// verify reports whether sig is v's signature of msg, checking it only if
// this (key, msg, sig) was not checked lately. kind tells the roles of
// keys apart (the log's, a witness's), in case a log and a witness used
// one name and key ID.
func (c *checkCache) verify(kind byte, v note.Verifier, msg, sig []byte) bool {
	h := sha256.New()
	var n [8]byte
	h.Write([]byte{kind})
	h.Write(binary.BigEndian.AppendUint32(n[:0], v.KeyHash()))
	for _, b := range [][]byte{[]byte(v.Name()), msg, sig} {
		h.Write(binary.BigEndian.AppendUint64(n[:0], uint64(len(b))))
		h.Write(b)
	}
	key := [sha256.Size]byte(h.Sum(nil))
	c.mu.Lock()
	ok, known := c.sigs.get(key, maxCheckedSignatures, 0)
	c.mu.Unlock()
	if known {
		return ok
	}
	ok = v.Verify(msg, sig)
	c.mu.Lock()
	c.sigs.put(key, ok, 0, maxCheckedSignatures, 0)
	c.mu.Unlock()
	return ok
}

// The kinds of keys of checkCache.verify.
const (
	kindLog     = 'L'
	kindWitness = 'W'
)

// cachedVerifier is a note.Verifier whose checks go through a checkCache,
// for api.OpenCheckpoint.
type cachedVerifier struct {
	note.Verifier
	kind  byte
	cache *checkCache
}

func (v cachedVerifier) Verify(msg, sig []byte) bool {
	return v.cache.verify(v.kind, v.Verifier, msg, sig)
}

// clone returns a copy of v that shares nothing changeable with it, or
// nil.
func (v *checkpointView) clone() *checkpointView {
	if v == nil {
		return nil
	}
	return &checkpointView{c: v.c, text: v.text, logSigs: slices.Clone(v.logSigs), cosigs: slices.Clone(v.cosigs)}
}

// generations is a bounded map: new entries go to the current
// generation; when it is full (entries, or cost if maxCost > 0), it
// becomes the old one and the previous old one is dropped. An entry found
// in the old generation moves to the current one, so that what is used
// stays. Its zero value is empty and ready.
type generations[K comparable, V any] struct {
	cur, old map[K]generationEntry[V]
	curCost  int
}

type generationEntry[V any] struct {
	v    V
	cost int
}

// get returns the value of k. The limits are put's.
func (g *generations[K, V]) get(k K, maxEntries, maxCost int) (V, bool) {
	if e, ok := g.cur[k]; ok {
		return e.v, true
	}
	e, ok := g.old[k]
	if !ok {
		var zero V
		return zero, false
	}
	delete(g.old, k)
	g.put(k, e.v, e.cost, maxEntries, maxCost)
	return e.v, true
}

// put adds or replaces k. If the current generation holds maxEntries, or
// (if maxCost > 0) would cost more than maxCost with k, it becomes the old
// one first, so that each generation holds at most maxEntries and costs at
// most maxCost plus one entry's cost.
func (g *generations[K, V]) put(k K, v V, cost, maxEntries, maxCost int) {
	if old, ok := g.cur[k]; ok {
		g.curCost -= old.cost
		delete(g.cur, k)
	}
	if len(g.cur) >= maxEntries || maxCost > 0 && g.curCost+cost > maxCost {
		g.old, g.cur, g.curCost = g.cur, nil, 0
	}
	if g.cur == nil {
		g.cur = make(map[K]generationEntry[V])
	}
	g.cur[k] = generationEntry[V]{v, cost}
	g.curCost += cost
}

// len returns the number of entries, and their cost.
func (g *generations[K, V]) len() (int, int) {
	cost := g.curCost
	for _, e := range g.old {
		cost += e.cost
	}
	return len(g.cur) + len(g.old), cost
}
