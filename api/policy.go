package api

import (
	"bytes"
	"errors"
	"fmt"
	"strconv"
	"strings"

	"golang.org/x/mod/sumdb/note"
)

// ErrInvalidPolicy is wrapped by the errors of ParsePolicy.
var ErrInvalidPolicy = errors.New("invalid policy")

// ErrQuorumNotMet is wrapped by the errors for checkpoints whose valid
// witness cosignatures do not satisfy a policy's quorum.
var ErrQuorumNotMet = errors.New("witness quorum not met")

// policyNone is the predefined name of the empty quorum.
const policyNone = "none"

// Policy is a c2sp.org/tlog-policy trust policy: the logs whose
// checkpoints a verifier accepts, the witnesses it knows, and the quorum of
// witnesses that must have cosigned a checkpoint. A Policy is immutable and
// safe for concurrent use.
type Policy struct {
	logs      []PolicyLog
	witnesses []PolicyWitness
	groups    []PolicyGroup
	quorum    string // policyNone or a witness or group name

	// nodes are the witnesses and groups in the order they are defined, so
	// that a group's members come before it; names indexes them.
	nodes      []policyNode
	names      map[string]int
	quorumNode int // index in nodes, or -1 for none

	verifiers        note.Verifiers // logs and witnesses
	witnessVerifiers note.Verifiers
}

// policyNode is a witness (witness >= 0, its index in Policy.witnesses) or
// a group (witness < 0) of members, indexes in Policy.nodes, at least k of
// which must have witnessed a checkpoint.
type policyNode struct {
	witness int
	k       int
	members []int
}

// PolicyLog is a log that a Policy trusts.
type PolicyLog struct {
	// Origin is the name of the log's key, which is the log's checkpoint
	// origin.
	Origin string
	// VerifierKey is the log's Ed25519 (type 0x01) signed-note verifier key.
	VerifierKey string
	// Verifier verifies the log's checkpoint signatures.
	Verifier note.Verifier
	// URL is optional and application specific; empty if none.
	URL string
}

// PolicyWitness is a witness that a Policy knows.
type PolicyWitness struct {
	// Name names the witness in the policy, for groups and the quorum. It
	// need not be the name of the witness's key.
	Name string
	// VerifierKey is the witness's cosignature/v1 (type 0x04) verifier key.
	VerifierKey string
	// Verifier verifies the witness's cosignatures.
	Verifier *CosignatureVerifier
	// URL is optional; if set, it is the witness's c2sp.org/tlog-witness
	// submission prefix. Empty if none.
	URL string
}

// PolicyGroup is a named group of witnesses and groups, which witnesses a
// checkpoint if at least K of its members did.
type PolicyGroup struct {
	Name string
	// K is the threshold, 1 <= K <= len(Members). The policy file's "any"
	// is 1 and "all" is len(Members).
	K int
	// Members are names of witnesses and groups defined before the group.
	Members []string
}

// ParsePolicy parses a c2sp.org/tlog-policy policy file. Its lines are
//
//	log <vkey> [<url>]
//	witness <name> <vkey> [<url>]
//	group <name> <k>|all|any <name>...
//	quorum <name>|none
//
// with items separated by spaces and tabs, empty lines, and comment lines
// whose first non-blank character is "#". The only control characters
// allowed are tab and newline. The last line need not end in a newline.
//
// The rules are the specification's: log keys are Ed25519 (type 0x01) and
// witness keys cosignature/v1 (type 0x04) signed-note vkeys, and no two
// logs, nor two witnesses, share a public key; witnesses and groups share
// one namespace, in which "none" is predefined; a group or the quorum names
// only witnesses and groups defined on earlier lines; a group has at least
// one member and a threshold k, in decimal with no leading zeroes, with
// 1 <= k <= its number of members; there is exactly one quorum line. A name
// is listed as a group member at most once in the whole policy, so that
// each witness counts towards the quorum in one way only. Names and URLs
// are opaque: bytes with the high bit set are allowed and compared as they
// are.
//
// ParsePolicy imposes no limit on the number of logs, witnesses or groups:
// bound the size of the input.
//
// Every error wraps ErrInvalidPolicy.
func ParsePolicy(text []byte) (*Policy, error) {
	for i, c := range text {
		if c < 0x20 && c != '\t' && c != '\n' || c == 0x7f {
			return nil, fmt.Errorf("%w: control character %#02x at byte %d", ErrInvalidPolicy, c, i)
		}
	}
	b := &policyBuilder{
		p:           &Policy{names: make(map[string]int), quorumNode: -1},
		logKeys:     make(map[string]bool),
		witnessKeys: make(map[string]bool),
		keyIDs:      make(map[nameID]bool),
		used:        make(map[string]bool),
	}
	for i, line := range bytes.Split(text, []byte("\n")) {
		fields := policyFields(string(line))
		if len(fields) == 0 || strings.HasPrefix(fields[0], "#") {
			continue
		}
		if err := b.line(fields); err != nil {
			return nil, fmt.Errorf("%w: line %d: %w", ErrInvalidPolicy, i+1, err)
		}
	}
	if b.p.quorum == "" {
		return nil, fmt.Errorf("%w: no quorum line", ErrInvalidPolicy)
	}
	p := b.p
	var all, witnesses []note.Verifier
	for _, l := range p.logs {
		all = append(all, l.Verifier)
	}
	for _, w := range p.witnesses {
		all = append(all, w.Verifier)
		witnesses = append(witnesses, w.Verifier)
	}
	p.verifiers = note.VerifierList(all...)
	p.witnessVerifiers = note.VerifierList(witnesses...)
	return p, nil
}

// policyFields splits a policy line into items separated by ASCII spaces
// and tabs only: other Unicode spaces are part of the items.
func policyFields(line string) []string {
	return strings.FieldsFunc(line, func(r rune) bool { return r == ' ' || r == '\t' })
}

type nameID struct {
	name string
	id   uint32
}

// policyBuilder holds the state of ParsePolicy.
type policyBuilder struct {
	p           *Policy
	logKeys     map[string]bool // public keys of logs
	witnessKeys map[string]bool // public keys of witnesses
	keyIDs      map[nameID]bool // key names and IDs of logs and witnesses
	used        map[string]bool // names listed as group members
}

func (b *policyBuilder) line(f []string) error {
	switch f[0] {
	case "log":
		if len(f) < 2 || len(f) > 3 {
			return errors.New("want log <vkey> [<url>]")
		}
		return b.log(f[1], optional(f, 2))
	case "witness":
		if len(f) < 3 || len(f) > 4 {
			return errors.New("want witness <name> <vkey> [<url>]")
		}
		return b.witness(f[1], f[2], optional(f, 3))
	case "group":
		if len(f) < 4 {
			return errors.New("want group <name> <k>|all|any and one or more member names")
		}
		return b.group(f[1], f[2], f[3:])
	case "quorum":
		if len(f) != 2 {
			return errors.New("want quorum <name>")
		}
		return b.setQuorum(f[1])
	default:
		return fmt.Errorf("unknown keyword %q", f[0])
	}
}

func optional(f []string, i int) string {
	if i < len(f) {
		return f[i]
	}
	return ""
}

func (b *policyBuilder) log(vkey, url string) error {
	k, err := parseNoteKey(vkey, false)
	if err != nil {
		return err
	}
	if k.typ != sigTypeEd25519 {
		return fmt.Errorf("log key type 0x%02x, want 0x%02x (Ed25519)", k.typ, sigTypeEd25519)
	}
	v, err := newEd25519Verifier(vkey, k)
	if err != nil {
		return err
	}
	if b.logKeys[string(k.key)] {
		return fmt.Errorf("duplicate log key %s", vkey)
	}
	if err := b.addKeyID(k); err != nil {
		return err
	}
	b.logKeys[string(k.key)] = true
	b.p.logs = append(b.p.logs, PolicyLog{Origin: k.name, VerifierKey: vkey, Verifier: v, URL: url})
	return nil
}

func (b *policyBuilder) addKeyID(k noteKey) error {
	id := nameID{k.name, k.id}
	if b.keyIDs[id] {
		return fmt.Errorf("two keys named %q have the same key ID %08x", k.name, k.id)
	}
	b.keyIDs[id] = true
	return nil
}

func (b *policyBuilder) define(name string) error {
	if name == policyNone {
		return fmt.Errorf("%q is predefined", policyNone)
	}
	if _, ok := b.p.names[name]; ok {
		return fmt.Errorf("duplicate name %q", name)
	}
	return nil
}

func (b *policyBuilder) witness(name, vkey, url string) error {
	if err := b.define(name); err != nil {
		return err
	}
	k, err := parseNoteKey(vkey, false)
	if err != nil {
		return err
	}
	if k.typ != sigTypeCosignatureV1 {
		return fmt.Errorf("witness key type 0x%02x, want 0x%02x (cosignature/v1)", k.typ, sigTypeCosignatureV1)
	}
	v, err := newCosignatureVerifier(k)
	if err != nil {
		return err
	}
	if b.witnessKeys[string(k.key)] {
		return fmt.Errorf("duplicate witness key %s", vkey)
	}
	if err := b.addKeyID(k); err != nil {
		return err
	}
	b.witnessKeys[string(k.key)] = true
	p := b.p
	p.names[name] = len(p.nodes)
	p.nodes = append(p.nodes, policyNode{witness: len(p.witnesses)})
	p.witnesses = append(p.witnesses, PolicyWitness{Name: name, VerifierKey: vkey, Verifier: v, URL: url})
	return nil
}

func (b *policyBuilder) group(name, threshold string, members []string) error {
	if err := b.define(name); err != nil {
		return err
	}
	n := len(members)
	var k int
	switch threshold {
	case "all":
		k = n
	case "any":
		k = 1
	default:
		u, ok := parseDecimal(threshold)
		if !ok || u < 1 || u > uint64(n) {
			return fmt.Errorf("group %q threshold %q is not all, any or 1 to %d", name, threshold, n)
		}
		k = int(u)
	}
	p := b.p
	node := policyNode{witness: -1, k: k, members: make([]int, 0, n)}
	for _, m := range members {
		if m == policyNone {
			return fmt.Errorf("group %q lists %q", name, policyNone)
		}
		i, ok := p.names[m]
		if !ok {
			return fmt.Errorf("group %q lists %q, which is not defined on an earlier line", name, m)
		}
		if b.used[m] {
			return fmt.Errorf("group %q lists %q, which is already a group member", name, m)
		}
		b.used[m] = true
		node.members = append(node.members, i)
	}
	p.names[name] = len(p.nodes)
	p.nodes = append(p.nodes, node)
	p.groups = append(p.groups, PolicyGroup{Name: name, K: k, Members: members})
	return nil
}

func (b *policyBuilder) setQuorum(name string) error {
	p := b.p
	if p.quorum != "" {
		return errors.New("second quorum line")
	}
	if name != policyNone {
		i, ok := p.names[name]
		if !ok {
			return fmt.Errorf("quorum %q is not defined on an earlier line", name)
		}
		p.quorumNode = i
	}
	p.quorum = name
	return nil
}

// Marshal returns the policy in a canonical policy file form that
// ParsePolicy parses back to the same policy: the logs, then the witnesses
// and groups in the order they were defined, then the quorum, one per line,
// items separated by single spaces, group thresholds as numbers.
func (p *Policy) Marshal() []byte {
	var b []byte
	for _, l := range p.logs {
		b = append(b, "log "...)
		b = append(b, l.VerifierKey...)
		b = appendOptional(b, l.URL)
		b = append(b, '\n')
	}
	groups := p.groups
	for _, nd := range p.nodes {
		if nd.witness >= 0 {
			w := p.witnesses[nd.witness]
			b = append(b, "witness "...)
			b = append(b, w.Name...)
			b = append(b, ' ')
			b = append(b, w.VerifierKey...)
			b = appendOptional(b, w.URL)
			b = append(b, '\n')
			continue
		}
		g := groups[0]
		groups = groups[1:]
		b = append(b, "group "...)
		b = append(b, g.Name...)
		b = append(b, ' ')
		b = strconv.AppendInt(b, int64(g.K), 10)
		for _, m := range g.Members {
			b = append(b, ' ')
			b = append(b, m...)
		}
		b = append(b, '\n')
	}
	b = append(b, "quorum "...)
	b = append(b, p.quorum...)
	return append(b, '\n')
}

func appendOptional(b []byte, s string) []byte {
	if s == "" {
		return b
	}
	return append(append(b, ' '), s...)
}

// Logs returns the policy's logs, in the order they are listed.
func (p *Policy) Logs() []PolicyLog {
	return append([]PolicyLog(nil), p.logs...)
}

// Witnesses returns the policy's witnesses, in the order they are listed.
func (p *Policy) Witnesses() []PolicyWitness {
	return append([]PolicyWitness(nil), p.witnesses...)
}

// Groups returns the policy's groups, in the order they are listed.
func (p *Policy) Groups() []PolicyGroup {
	gs := make([]PolicyGroup, len(p.groups))
	for i, g := range p.groups {
		gs[i] = PolicyGroup{Name: g.Name, K: g.K, Members: append([]string(nil), g.Members...)}
	}
	return gs
}

// Quorum returns the name of the witness or group that must witness a
// checkpoint, or "none" if no cosignatures are required.
func (p *Policy) Quorum() string { return p.quorum }

// Verifiers returns the verifiers of the policy's logs and witnesses, for
// note.Open.
func (p *Policy) Verifiers() note.Verifiers { return p.verifiers }

// Open verifies a signed checkpoint against the policy and parses it: it
// must carry a valid signature by one of the policy's logs, whose key name
// is the checkpoint's origin, and valid cosignatures by witnesses that
// satisfy the quorum.
//
// Like note.Open, as c2sp.org/signed-note recommends, Open rejects a note
// in which a signature by one of the policy's keys (same key name and key
// ID) fails to verify. Signatures by other keys are ignored, and left in
// the note's UnverifiedSigs.
//
// A malformed note, or one whose text is not a valid checkpoint for the
// log that signed it, gives an error wrapping ErrInvalidCheckpoint. A note
// without a valid log signature gives an error wrapping the
// *note.UnverifiedNoteError or *note.InvalidSignatureError of note.Open.
// A note whose cosignatures fall short of the quorum gives an error
// wrapping ErrQuorumNotMet.
func (p *Policy) Open(signed []byte) (Checkpoint, *note.Note, error) {
	if len(p.logs) == 0 {
		return Checkpoint{}, nil, errors.New("couldn't open checkpoint: the policy lists no logs; use OpenCheckpoint and CheckCosignatures")
	}
	n, err := openNote(signed, p.verifiers)
	if err != nil {
		return Checkpoint{}, nil, err
	}
	verified := make(map[nameID]bool, len(n.Sigs))
	for _, s := range n.Sigs {
		verified[nameID{s.Name, s.Hash}] = true
	}
	var signers []string
	for _, l := range p.logs {
		if verified[nameID{l.Verifier.Name(), l.Verifier.KeyHash()}] {
			signers = append(signers, l.Origin)
		}
	}
	if len(signers) == 0 {
		return Checkpoint{}, nil, fmt.Errorf("couldn't verify checkpoint signature: %w", &note.UnverifiedNoteError{Note: n})
	}
	c, err := ParseCheckpoint([]byte(n.Text))
	if err != nil {
		return Checkpoint{}, nil, fmt.Errorf("couldn't parse checkpoint: %w", err)
	}
	originSigned := false
	for _, o := range signers {
		originSigned = originSigned || o == c.Origin
	}
	if !originSigned {
		return Checkpoint{}, nil, fmt.Errorf("couldn't open checkpoint: %w: origin %q is not the name of the log key that signed it", ErrInvalidCheckpoint, c.Origin)
	}
	if err := p.checkQuorum(verified); err != nil {
		return Checkpoint{}, nil, fmt.Errorf("couldn't verify checkpoint cosignatures: %w", err)
	}
	return c, n, nil
}

// CheckCosignatures checks that the witness cosignatures in n, a note
// opened by the caller (for example with OpenCheckpoint, when the log is
// known from elsewhere), satisfy the policy's quorum. It verifies every
// signature in n.Sigs and n.UnverifiedSigs itself, by the rules of
// note.Open: it does not trust n.Sigs, and a signature by a witness's key
// that fails to verify makes the whole note invalid. It does not check the
// log's signature.
//
// A note whose cosignatures fall short of the quorum gives an error
// wrapping ErrQuorumNotMet; one with a failing witness signature, an error
// wrapping *note.InvalidSignatureError; a malformed one, an error wrapping
// ErrInvalidCheckpoint.
func (p *Policy) CheckCosignatures(n *note.Note) error {
	verified := make(map[nameID]bool)
	if len(n.Sigs)+len(n.UnverifiedSigs) > 0 {
		// Rebuild the signed note and open it again, so that every
		// signature is checked the way note.Open checks them.
		signed, err := note.Sign(&note.Note{Text: n.Text, Sigs: n.Sigs, UnverifiedSigs: n.UnverifiedSigs})
		if err != nil {
			return fmt.Errorf("couldn't check cosignatures: %w: %w", ErrInvalidCheckpoint, err)
		}
		opened, err := note.Open(signed, p.witnessVerifiers)
		var unverified *note.UnverifiedNoteError
		var invalid *note.InvalidSignatureError
		switch {
		case err == nil:
			for _, s := range opened.Sigs {
				verified[nameID{s.Name, s.Hash}] = true
			}
		case errors.As(err, &unverified):
			// No witness signature at all.
		case errors.As(err, &invalid):
			return fmt.Errorf("couldn't verify checkpoint cosignatures: %w", err)
		default:
			return fmt.Errorf("couldn't check cosignatures: %w: %w", ErrInvalidCheckpoint, err)
		}
	}
	if err := p.checkQuorum(verified); err != nil {
		return fmt.Errorf("couldn't verify checkpoint cosignatures: %w", err)
	}
	return nil
}

// checkQuorum evaluates the quorum given the keys whose signatures
// verified.
func (p *Policy) checkQuorum(verified map[nameID]bool) error {
	if p.quorumNode < 0 {
		return nil
	}
	// A group's members are defined before it, so one pass in definition
	// order evaluates every node after its members.
	witnessed := make([]bool, len(p.nodes))
	cosigners := 0
	for i, nd := range p.nodes {
		if nd.witness >= 0 {
			v := p.witnesses[nd.witness].Verifier
			witnessed[i] = verified[nameID{v.Name(), v.KeyHash()}]
			if witnessed[i] {
				cosigners++
			}
			continue
		}
		count := 0
		for _, m := range nd.members {
			if witnessed[m] {
				count++
			}
		}
		witnessed[i] = count >= nd.k
	}
	if !witnessed[p.quorumNode] {
		return fmt.Errorf("%w: %d of the policy's %d witnesses cosigned, not enough for quorum %q", ErrQuorumNotMet, cosigners, len(p.witnesses), p.quorum)
	}
	return nil
}
