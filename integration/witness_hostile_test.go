package integration

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/memberlist"

	"github.com/candorlog/candor/api"
	"github.com/candorlog/candor/api/apitest"
	"github.com/candorlog/candor/witness"
)

// TestWitnessNetworkHostileMember runs three candor-witness processes that
// gossip unencrypted (the default), each on a loopback address of its own,
// and a stranger that joins their cluster (this test, with memberlist):
//
//   - it sends variants of one piece of evidence (junk signature lines,
//     the checkpoints swapped, a signature re-encoded): each witness must
//     store and serve it once, in canonical form;
//   - it sends more distinct pieces of evidence about the log than a
//     witness keeps: each must keep MaxEvidencePerLog, count the rest,
//     and serve a small /v1/evidence;
//   - it floods the witnesses with distinct checkpoints of another log,
//     each with a forged cosignature line of a trusted witness, while the
//     witnesses cosign a checkpoint of that log: their gossip must still
//     arrive. The CPU the flood cost each witness is logged.
func TestWitnessNetworkHostileMember(t *testing.T) {
	requireBinaries(t)
	bin, err := buildOnce("github.com/candorlog/candor/cmd/candor-witness")
	if err != nil {
		t.Fatal(err)
	}
	const n = 3
	const origin, floodOrigin = "example.com/byzantine-log", "example.com/flooded-log"
	logSigner, logVerifier, logVkey := apitest.NewNoteKey(origin, rand.Reader)
	floodSigner, _, floodVkey := apitest.NewNoteKey(floodOrigin, rand.Reader)
	members := newWitnessMembers(t, n, "hostile")
	ws := make([]*witnessServer, n)
	var seed []string
	for i, m := range members {
		// An address of its own: the per-sender limits are per address.
		cfg := writeWitnessConfig(t, members, i, logsYAML(origin, logVkey, floodOrigin, floodVkey), nil,
			fmt.Sprintf("127.0.0.%d:0", 10+i), seed)
		if ws[i], err = startWitnessServer(t, bin, m.dir, "--config", cfg); err != nil {
			t.Fatal(err)
		}
		if i == 0 {
			seed = []string{gossipAddr(t, ws[0])}
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	waitForMembers(t, ctx, ws, func(int) int { return n }, time.Minute, "the start")

	mc := memberlist.DefaultLocalConfig()
	mc.Name, mc.BindAddr, mc.BindPort, mc.LogOutput = "stranger", "127.0.0.99", 0, io.Discard
	stranger, err := memberlist.Create(mc)
	if err != nil {
		t.Fatal(err)
	}
	defer stranger.Shutdown()
	if _, err := stranger.Join(seed); err != nil {
		t.Fatal(err)
	}
	waitFor(t, time.Minute, "the stranger in the cluster", func() bool { return stranger.NumMembers() == n+1 })
	send := func(msgs [][]byte) (sent int) {
		for _, msg := range msgs {
			for _, m := range stranger.Members() {
				if m.Name != mc.Name && stranger.SendBestEffort(m, msg) == nil {
					sent++
				}
			}
		}
		return sent
	}

	// Variants of one piece of evidence.
	viewA, viewB := forkedView(t, logSigner, "A"), forkedView(t, logSigner, "B")
	variants := evidenceVariants(t, origin, viewA, viewB)
	for range 3 { // UDP: again, in case a packet was lost
		send(variants)
		time.Sleep(100 * time.Millisecond)
	}
	waitFor(t, 30*time.Second, "the evidence at every witness", func() bool {
		for _, w := range ws {
			if evs := servedEvidence(t, ctx, w); len(evs) == 0 {
				return false
			}
		}
		return true
	})
	time.Sleep(time.Second) // the rest of the variants are handled
	var firstID string
	for i, w := range ws {
		evs := servedEvidence(t, ctx, w)
		if len(evs) != 1 {
			t.Fatalf("witness %d serves %d pieces of evidence after %d variants of one, want 1", i, len(evs), len(variants))
		}
		if _, err := evs[0].VerifyCanonical(logVerifier); err != nil {
			t.Fatalf("witness %d serves evidence that is not canonical: %v", i, err)
		}
		if i == 0 {
			firstID = evs[0].ID()
		} else if evs[0].ID() != firstID {
			t.Fatalf("witness %d serves another piece of evidence than witness 0", i)
		}
	}

	// More pieces than a witness keeps.
	const pieces = 3 * witness.MaxEvidencePerLog
	var distinct [][]byte
	for k := range pieces {
		a := forkedViewAt(t, logSigner, fmt.Sprintf("A%d", k), int64(11+k))
		b := forkedViewAt(t, logSigner, fmt.Sprintf("B%d", k), int64(11+k))
		raw, err := api.NewEquivocation(origin, a, b).Marshal()
		if err != nil {
			t.Fatal(err)
		}
		distinct = append(distinct, append([]byte{'e'}, raw...))
	}
	for range 3 {
		send(distinct)
		time.Sleep(100 * time.Millisecond)
	}
	waitFor(t, 30*time.Second, "every witness at its evidence cap", func() bool {
		for _, w := range ws {
			if len(servedEvidence(t, ctx, w)) < witness.MaxEvidencePerLog {
				return false
			}
		}
		return true
	})
	time.Sleep(time.Second)
	for i, w := range ws {
		code, body, err := w.get(ctx, "/v1/evidence")
		if err != nil || code != http.StatusOK {
			t.Fatalf("witness %d: GET /v1/evidence: %d %v", i, code, err)
		}
		evs := servedEvidence(t, ctx, w)
		if len(evs) != witness.MaxEvidencePerLog {
			t.Errorf("witness %d serves %d pieces of evidence about the log after %d distinct ones, want %d", i, len(evs), pieces+1, witness.MaxEvidencePerLog)
		}
		dropped := metricValue(t, ctx, w, `candor_witness_evidence_dropped_total{origin="`+origin+`"}`)
		if dropped == 0 {
			t.Errorf("witness %d counted no dropped evidence", i)
		}
		t.Logf("witness %d: /v1/evidence is %d bytes, %v pieces dropped, data directory %d bytes",
			i, len(body), dropped, dirSize(t, members[i].dir))
	}

	// The flood: distinct checkpoints of the other log, each with a forged
	// line of witness 1 (its name and key ID, another signature).
	const floodSize = 5000
	flood := make([][]byte, floodSize)
	forgedKey, err := api.NewCosignatureVerifier(members[1].vkey)
	if err != nil {
		t.Fatal(err)
	}
	for k := range flood {
		cp, err := api.SignCheckpoint(api.Checkpoint{Origin: floodOrigin, Size: uint64(1000 + k), Hash: sha256.Sum256([]byte(strconv.Itoa(k)))}, floodSigner)
		if err != nil {
			t.Fatal(err)
		}
		flood[k] = append([]byte{'o'}, withForgedLine(cp, members[1].name, forgedKey.KeyHash())...)
	}
	// The CPU the witnesses use without the flood, for as long as it will
	// be measured with it: about 2 s.
	idle := make([]time.Duration, n)
	for i, w := range ws {
		idle[i] = cpuTime(t, w.cmd.Process.Pid)
	}
	time.Sleep(2 * time.Second)
	before := make([]time.Duration, n)
	for i, w := range ws {
		before[i] = cpuTime(t, w.cmd.Process.Pid)
		idle[i] = before[i] - idle[i]
	}
	measured := time.Now()
	flooded := make(chan int, 1)
	go func() { flooded <- send(flood) }()
	honest, err := api.SignCheckpoint(api.Checkpoint{Origin: floodOrigin, Size: 7, Hash: sha256.Sum256([]byte("honest"))}, floodSigner)
	if err != nil {
		t.Fatal(err)
	}
	floodStart := time.Now()
	for i, w := range ws {
		if code, _, body, err := w.addCheckpoint(ctx, api.AddCheckpointRequest{Checkpoint: honest}); err != nil || code != http.StatusOK {
			t.Fatalf("witness %d: add-checkpoint: %d %s, %v", i, code, body, err)
		}
	}
	waitFor(t, time.Minute, "every cosignature at every witness despite the flood", func() bool {
		for _, w := range ws {
			if bytes.Count(servedCheckpoint(t, ctx, w, floodOrigin), []byte("\n— ")) != n+1 {
				return false
			}
		}
		return true
	})
	merged := time.Since(floodStart)
	sent := <-flooded
	time.Sleep(time.Second) // the last of the flood is handled
	elapsed := time.Since(measured)
	for i, w := range ws {
		cpu := cpuTime(t, w.cmd.Process.Pid) - before[i]
		base := time.Duration(float64(idle[i]) * elapsed.Seconds() / 2)
		limited := metricValue(t, ctx, w, `candor_witness_gossip_messages_total{result="limited",type="packet"}`)
		t.Logf("witness %d: the flood (%d packets to it) cost %s of CPU over %s (%s idle): %.0f µs a packet; %.0f dropped at the transport; honest gossip merged at every witness %s after it began",
			i, sent/n, cpu.Round(10*time.Millisecond), elapsed.Round(10*time.Millisecond), base.Round(10*time.Millisecond),
			float64((cpu-base).Microseconds())/float64(sent/n), limited, merged.Round(time.Millisecond))
		if evs := servedEvidence(t, ctx, w); len(evs) != witness.MaxEvidencePerLog {
			t.Errorf("witness %d serves %d pieces of evidence after the flood, want %d", i, len(evs), witness.MaxEvidencePerLog)
		}
	}
}

// waitFor polls cond until it holds, and fails the test after limit.
func waitFor(t *testing.T, limit time.Duration, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(limit); !cond(); time.Sleep(50 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("no %s after %s", what, limit)
		}
	}
}

// evidenceVariants returns gossip messages ('e' and the evidence) of
// variants of the evidence that a and b, two checkpoints of origin of
// the same size, prove an equivocation: as it is, swapped, with junk
// signature lines, with a signature line re-encoded in another base64.
func evidenceVariants(t *testing.T, origin string, a, b []byte) [][]byte {
	t.Helper()
	var out [][]byte
	add := func(e api.Evidence) {
		raw, err := e.Marshal()
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, append([]byte{'e'}, raw...))
	}
	e := api.NewEquivocation(origin, a, b)
	add(e)
	e.Checkpoints[0], e.Checkpoints[1] = e.Checkpoints[1], e.Checkpoints[0]
	add(e)
	for k := range 20 {
		junk := api.NewEquivocation(origin, a, b)
		junk.Checkpoints[k%2] += junkLine(k)
		add(junk)
	}
	reenc := api.NewEquivocation(origin, a, b)
	reenc.Checkpoints[1] = reencodeLastLine(t, reenc.Checkpoints[1])
	add(reenc)
	return out
}

// junkLine is a signature line of no key anyone trusts.
func junkLine(k int) string {
	sig := make([]byte, 4+64)
	rand.Read(sig)
	return fmt.Sprintf("— junk.example/%d %s\n", k, base64.StdEncoding.EncodeToString(sig))
}

// reencodeLastLine returns the signed note with the base64 of its last
// signature line written with other unused bits, which a lenient decoder
// reads as the same signature.
func reencodeLastLine(t *testing.T, signed string) string {
	t.Helper()
	body := strings.TrimSuffix(signed, "\n")
	i := strings.LastIndexByte(body, ' ')
	enc := body[i+1:]
	const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
	j := len(strings.TrimRight(enc, "=")) - 1
	if enc[j+1:] == "" {
		t.Fatal("the signature's base64 has no unused bits")
	}
	c := alphabet[strings.IndexByte(alphabet, enc[j])^1]
	return body[:i+1] + enc[:j] + string(c) + enc[j+1:] + "\n"
}

// withForgedLine returns the signed checkpoint with a cosignature line
// under name and key ID id whose signature is random.
func withForgedLine(signed []byte, name string, id uint32) []byte {
	sig := make([]byte, 4+8+64)
	rand.Read(sig)
	binary.BigEndian.PutUint32(sig, id)
	return fmt.Appendf(bytes.Clone(signed), "— %s %s\n", name, base64.StdEncoding.EncodeToString(sig))
}

// servedEvidence returns the evidence w serves.
func servedEvidence(t *testing.T, ctx context.Context, w *witnessServer) []api.Evidence {
	t.Helper()
	code, body, err := w.get(ctx, "/v1/evidence")
	if err != nil || code != http.StatusOK {
		t.Fatalf("GET /v1/evidence: %d %v", code, err)
	}
	var list witness.EvidenceList
	if err := json.Unmarshal(body, &list); err != nil {
		t.Fatalf("GET /v1/evidence: %v", err)
	}
	out := make([]api.Evidence, 0, len(list.Evidence))
	for _, raw := range list.Evidence {
		e, err := api.ParseEvidence(raw)
		if err != nil {
			t.Fatalf("GET /v1/evidence served unparseable evidence: %v", err)
		}
		out = append(out, e)
	}
	return out
}

// servedCheckpoint returns the cosigned checkpoint of origin that w
// serves, or nil if it serves none.
func servedCheckpoint(t *testing.T, ctx context.Context, w *witnessServer, origin string) []byte {
	t.Helper()
	sum := sha256.Sum256([]byte(origin))
	code, body, err := w.get(ctx, "/"+hex.EncodeToString(sum[:])+"/checkpoint")
	switch {
	case err != nil:
		t.Fatal(err)
	case code == http.StatusNotFound:
		return nil
	case code != http.StatusOK:
		t.Fatalf("GET checkpoint: %d %s", code, body)
	}
	return body
}

// metricValue returns the value of the sample of w's metrics whose name
// and labels are series (labels in the order Prometheus prints them), or
// 0 if there is none.
func metricValue(t *testing.T, ctx context.Context, w *witnessServer, series string) float64 {
	t.Helper()
	code, body, err := w.get(ctx, "/metrics")
	if err != nil || code != http.StatusOK {
		t.Fatalf("GET /metrics: %d %v", code, err)
	}
	for line := range strings.Lines(string(body)) {
		if v, ok := strings.CutPrefix(strings.TrimSpace(line), series+" "); ok {
			f, err := strconv.ParseFloat(v, 64)
			if err != nil {
				t.Fatalf("metric %s: %v", series, err)
			}
			return f
		}
	}
	return 0
}

// cpuTime returns the CPU time, user and system, that process pid used,
// from /proc (in clock ticks of 10 ms, USER_HZ on Linux).
func cpuTime(t *testing.T, pid int) time.Duration {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		t.Skipf("no CPU time from /proc: %v", err)
	}
	// The fields after the command name, which is in parentheses.
	f := strings.Fields(string(b[bytes.LastIndexByte(b, ')')+1:]))
	utime, err1 := strconv.ParseInt(f[11], 10, 64)
	stime, err2 := strconv.ParseInt(f[12], 10, 64)
	if err1 != nil || err2 != nil {
		t.Fatalf("/proc/%d/stat: %q", pid, b)
	}
	return time.Duration(utime+stime) * 10 * time.Millisecond
}

// dirSize returns the bytes of the files under dir.
func dirSize(t *testing.T, dir string) int64 {
	t.Helper()
	var size int64
	err := filepath.WalkDir(dir, func(_ string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if info, err := d.Info(); err == nil && !d.IsDir() {
			size += info.Size()
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return size
}
