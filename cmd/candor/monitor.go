package main

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
	"time"

	"github.com/schollz/progressbar/v3"

	"github.com/candorlog/candor/api"
	logclient "github.com/candorlog/candor/api/client"
)

// Exit codes of candor monitor --once beyond 0 (nothing found), 1 (it
// could not run) and 2 (usage).
const (
	exitAlerts = 3 // an entry matched the watch list
	exitFaults = 4 // the log misbehaved: a fork, or an entry it should have refused
)

// exitCode is an error that sets the exit code of candor.
type exitCode struct {
	code int
	msg  string
}

func (e *exitCode) Error() string { return e.msg }

// monitorKey is the key of the monitor's state in the --state file.
const monitorKey = "monitor"

// monitorState is what the monitor keeps of each log in its --state file,
// besides the last verified checkpoint: every entry below Next has been
// checked, and Pending are the alerts of those not yet delivered.
type monitorState struct {
	Next    uint64          `json:"next"`
	Pending []*monitorAlert `json:"pending,omitempty"`
}

// monitorAlert is one alert or fault, as the webhook receives it (JSON)
// and stderr shows it (line).
type monitorAlert struct {
	// ID names the alert across restarts, for receivers to drop repeats.
	ID       string `json:"id"`
	Type     string `json:"type"` // "alert" or "fault"
	Origin   string `json:"origin"`
	Index    uint64 `json:"index,omitempty"`
	LeafHash string `json:"leafHash,omitempty"`
	Rule     string `json:"rule,omitempty"`
	Fault    string `json:"fault,omitempty"`
	Summary  string `json:"summary,omitempty"`
	// Size is the size of the tree the entry was checked in.
	Size     uint64 `json:"size"`
	Evidence string `json:"evidence,omitempty"` // a file candor verify-evidence checks
	// Delivery: printed to stderr, sent to the webhook.
	Printed bool `json:"printed,omitempty"`
	Sent    bool `json:"sent,omitempty"`
}

func (a *monitorAlert) line() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s %s", strings.ToUpper(a.Type), a.Origin)
	if a.LeafHash != "" {
		fmt.Fprintf(&b, " index %d", a.Index)
	}
	if a.Rule != "" {
		fmt.Fprintf(&b, " matches %q:", a.Rule)
	}
	if a.Summary != "" {
		fmt.Fprintf(&b, " %s", a.Summary)
	}
	if a.Fault != "" {
		fmt.Fprintf(&b, ": %s", a.Fault)
	}
	if a.LeafHash != "" {
		fmt.Fprintf(&b, " (leaf hash %s)", a.LeafHash)
	}
	if a.Evidence != "" {
		fmt.Fprintf(&b, " (evidence in %s)", a.Evidence)
	}
	return b.String()
}

// monitor follows one log for candor monitor.
type monitor struct {
	v        *logclient.Verifier
	state    *logclient.FileState
	origin   string
	watch    *logclient.Watch
	audit    bool
	workers  int
	webhook  string
	hc       *http.Client
	stderr   io.Writer
	evidence string // where evidence is written: <state>.evidence-<id>
	progress bool   // show a progress bar while catching up
	// witnesses are the URLs of the policy's witnesses that have one:
	// the monitor shows them its checkpoints, compares theirs, and gives
	// them the evidence it finds.
	witnesses []string

	st              monitorState
	alerts, faults  int
	lastSave        time.Time
	webhookAttempts int
	webhookBackoff  time.Duration
}

// runMonitor is "candor monitor".
func runMonitor(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("candor monitor", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var o followOptions
	o.register(fs)
	watchFile := fs.String("watch", "", "alert on the entries that match a rule of this `file` (key, repository, author, digest, image, identity; one a line)")
	webhook := fs.String("webhook", "", "also POST every alert and fault as JSON to this `URL`, with retries")
	once := fs.Bool("once", false, "check up to the log's latest checkpoint and exit: 0 nothing found, 3 alerts, 4 faults")
	audit := fs.Bool("audit", true, "check every entry's admission rules (signatures, canonical form) again from its bytes; false: the tree only")
	interval := fs.Duration("interval", 30*time.Second, "how often to fetch the log's checkpoint once caught up")
	workers := fs.Int("workers", 0, "entry bundles checked at once, in chunks (default: the number of CPUs)")
	fs.Usage = func() {
		fmt.Fprintln(stderr, "usage: candor monitor --log URL --policy FILE --state FILE [--watch FILE] [--webhook URL] [--once] [--audit=false]\n\n"+
			"Follows the log from the position in --state: verifies every new checkpoint under the\n"+
			"policy and against the last one, re-hashes every entry into the tree, checks every\n"+
			"entry's admission rules again, and alerts on the entries the watch list names.\n"+
			"Alerts and faults go to stderr, one line each, and to --webhook. Each new checkpoint\n"+
			"is shown to the policy's witnesses that have a URL, theirs are compared with it, and\n"+
			"the evidence of a fork or of an entry the log should have refused is given to them.")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected arguments %q", fs.Args())
	}
	if o.logURL == "" || o.policy == "" || o.state == "" || o.maxAge < 0 || *interval <= 0 || *workers < 0 {
		fs.Usage()
		return errUsage
	}
	m := &monitor{audit: *audit, workers: *workers, webhook: *webhook, stderr: stderr,
		hc: &http.Client{Timeout: o.timeout}, webhookAttempts: 5, webhookBackoff: 500 * time.Millisecond}
	if *watchFile != "" {
		f, err := os.Open(*watchFile)
		if err != nil {
			return fmt.Errorf("--watch: %w", err)
		}
		m.watch, err = logclient.ParseWatch(f)
		f.Close()
		if err != nil {
			return fmt.Errorf("--watch: %w", err)
		}
	}
	pv, signed, err := o.follow(ctx)
	if err != nil {
		return err
	}
	m.v, m.origin = pv.verifier, pv.verifier.Origin()
	for _, w := range pv.policy.Witnesses() {
		if w.URL != "" {
			m.witnesses = append(m.witnesses, w.URL)
		}
	}
	if m.state, err = logclient.NewFileState(o.state); err != nil {
		return fmt.Errorf("--state: %w", err)
	}
	m.evidence = o.state + ".evidence-"
	m.progress = isTerminal(stderr)
	if err := m.load(); err != nil {
		return err
	}
	if err := m.deliverPending(ctx); err != nil {
		return err
	}
	for {
		// Alerts the webhook refused earlier are sent again first.
		err := m.deliverPending(ctx)
		if err == nil {
			err = m.step(ctx, signed)
		}
		if err == nil {
			err = m.crossCheck(ctx)
		}
		signed = nil
		var fork *logclient.ForkError
		var held *witnessEvidence
		switch {
		case errors.As(err, &fork):
			if ferr := m.forkFault(ctx, fork); ferr != nil {
				return ferr
			}
			return &exitCode{code: exitFaults, msg: fmt.Sprintf("the log %s forked: %v", m.origin, fork)}
		case errors.As(err, &held):
			if ferr := m.witnessFault(ctx, held); ferr != nil {
				return ferr
			}
			return &exitCode{code: exitFaults, msg: held.Error()}
		case err != nil && (*once || ctx.Err() != nil):
			return err
		case err != nil:
			fmt.Fprintf(stderr, "candor monitor: %v (trying again in %s)\n", err, *interval)
		}
		if *once {
			break
		}
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(*interval):
		}
	}
	switch {
	case m.faults > 0:
		return &exitCode{code: exitFaults, msg: fmt.Sprintf("%d faults in the log %s", m.faults, m.origin)}
	case m.alerts > 0:
		return &exitCode{code: exitAlerts, msg: fmt.Sprintf("%d alerts", m.alerts)}
	}
	return nil
}

// load reads the monitor's position from its state file.
func (m *monitor) load() error {
	raw, err := m.state.LoadExtra(monitorKey)
	if err != nil || raw == nil {
		return err
	}
	var all map[string]monitorState
	if err := json.Unmarshal(raw, &all); err != nil {
		return fmt.Errorf("--state: the monitor's state: %w", err)
	}
	m.st = all[m.origin]
	latest, ok, err := m.v.Latest(context.Background())
	if err != nil {
		return err
	}
	if m.st.Next > 0 && (!ok || m.st.Next > latest.Size) {
		return fmt.Errorf("--state: the monitor checked %d entries of %s, more than the last verified checkpoint holds", m.st.Next, m.origin)
	}
	return nil
}

// save writes the monitor's position and pending alerts to its state
// file, keeping the other logs' and programs' state.
func (m *monitor) save() error {
	err := m.state.UpdateExtra(monitorKey, func(raw json.RawMessage) (json.RawMessage, error) {
		all := map[string]monitorState{}
		if raw != nil {
			if err := json.Unmarshal(raw, &all); err != nil {
				return nil, fmt.Errorf("--state: the monitor's state: %w", err)
			}
		}
		all[m.origin] = m.st
		return json.Marshal(all)
	})
	if err != nil {
		return err
	}
	m.lastSave = time.Now()
	return nil
}

// step checks the entries of the last verified checkpoint not yet
// checked, then verifies the log's latest checkpoint (signed, or fetched
// if nil) against it and checks the new entries.
func (m *monitor) step(ctx context.Context, signed []byte) error {
	if cp, ok, err := m.v.Latest(ctx); err != nil {
		return err
	} else if ok && m.st.Next < cp.Size {
		if err := m.scan(ctx, cp); err != nil {
			return err
		}
	}
	var cp logclient.Checkpoint
	var err error
	if signed != nil {
		cp, err = m.v.Accept(ctx, signed)
	} else {
		cp, err = m.v.Update(ctx)
	}
	if err != nil {
		return err
	}
	if m.st.Next < cp.Size {
		return m.scan(ctx, cp)
	}
	return nil
}

// scan checks the entries from m.st.Next to the end of the tree of cp.
func (m *monitor) scan(ctx context.Context, cp logclient.Checkpoint) error {
	start := m.st.Next
	var bar *progressbar.ProgressBar
	if m.progress && cp.Size-start > 10*api.TileWidth {
		bar = progressbar.NewOptions64(int64(cp.Size-start),
			progressbar.OptionSetWriter(m.stderr),
			progressbar.OptionSetDescription("checking "+m.origin),
			progressbar.OptionShowCount(),
			progressbar.OptionShowIts(),
			progressbar.OptionSetItsString("entries"),
			progressbar.OptionThrottle(200*time.Millisecond),
			progressbar.OptionClearOnFinish())
	}
	err := m.v.Scan(ctx, cp, start, cp.Size, m.workers, m.check, func(next uint64, findings []logclient.Finding) error {
		if bar != nil {
			bar.Set64(int64(next - start))
		}
		return m.report(ctx, cp, next, findings)
	})
	if bar != nil {
		bar.Finish()
	}
	if err != nil {
		return err
	}
	if !m.progress {
		return nil
	}
	fmt.Fprintf(m.stderr, "%s: checked %d entries up to %d; %d alerts, %d faults\n", m.origin, cp.Size-start, cp.Size, m.alerts, m.faults)
	return nil
}

// check is what the monitor checks of one entry, from several goroutines.
func (m *monitor) check(e logclient.Entry) []logclient.Finding {
	if !m.audit && m.watch.Len() == 0 {
		return nil
	}
	st, err := api.ParseEntry(e.Data)
	if err != nil {
		if !m.audit {
			return nil
		}
		return []logclient.Finding{{Index: e.Index, LeafHash: logclient.LeafHash(e.Data), Fault: err, Entry: e.Data,
			Summary: "the log holds an entry it should have refused"}}
	}
	rules := m.watch.Match(st)
	if len(rules) == 0 {
		return nil
	}
	leafHash := logclient.LeafHash(e.Data)
	findings := make([]logclient.Finding, len(rules))
	for i, r := range rules {
		findings[i] = logclient.Finding{Index: e.Index, LeafHash: leafHash, Rule: r, Summary: describeEntry(st)}
	}
	return findings
}

// positionEvery is how often the monitor saves its position while it
// finds nothing: after a crash it checks again what it checked since,
// which raised no alert.
const positionEvery = time.Second

// report records that every entry below next is checked, with the
// findings of the entries since the last report, and delivers them: the
// state (position and pending alerts) is saved first, then each alert is
// printed and sent, and saved as delivered, so that after a crash none is
// lost and none is delivered twice but for one cut between its delivery
// and that last save.
func (m *monitor) report(ctx context.Context, cp logclient.Checkpoint, next uint64, findings []logclient.Finding) error {
	m.st.Next = next
	if len(findings) == 0 {
		if time.Since(m.lastSave) < positionEvery && next < cp.Size {
			return nil
		}
		return m.save()
	}
	for _, f := range findings {
		a := &monitorAlert{Origin: m.origin, Index: f.Index, LeafHash: base64.StdEncoding.EncodeToString(f.LeafHash),
			Rule: f.Rule, Summary: f.Summary, Size: cp.Size, Type: "alert"}
		if f.Fault != nil {
			a.Type, a.Fault = "fault", f.Fault.Error()
			a.ID = fmt.Sprintf("%s/%d/fault", m.origin, f.Index)
			if !api.UnknownEntry(f.Fault) {
				a.Evidence = m.badEntryEvidence(ctx, cp, f)
			}
			m.faults++
		} else {
			a.ID = fmt.Sprintf("%s/%d/%s", m.origin, f.Index, f.Rule)
			m.alerts++
		}
		m.st.Pending = append(m.st.Pending, a)
	}
	if err := m.save(); err != nil {
		return err
	}
	return m.deliverPending(ctx)
}

// deliverPending prints and sends the pending alerts, saving each step.
func (m *monitor) deliverPending(ctx context.Context) error {
	if len(m.st.Pending) == 0 {
		return nil
	}
	webhookDown := false
	for _, a := range m.st.Pending {
		if !a.Printed {
			fmt.Fprintln(m.stderr, a.line())
			a.Printed = true
			if err := m.save(); err != nil {
				return err
			}
		}
		if !a.Sent && m.webhook != "" && !webhookDown {
			if err := m.send(ctx, a); err != nil {
				// Kept pending, with the others not yet sent: sent again
				// at the next delivery.
				fmt.Fprintf(m.stderr, "candor monitor: couldn't send alert %s to the webhook: %v\n", a.ID, err)
				webhookDown = true
				continue
			}
			a.Sent = true
			if err := m.save(); err != nil {
				return err
			}
		}
	}
	kept := m.st.Pending[:0]
	for _, a := range m.st.Pending {
		if !a.Printed || (m.webhook != "" && !a.Sent) {
			kept = append(kept, a)
		}
	}
	m.st.Pending = kept
	return m.save()
}

// send posts a to the webhook, retrying with backoff.
func (m *monitor) send(ctx context.Context, a *monitorAlert) error {
	body, err := json.Marshal(struct {
		*monitorAlert
		Printed, Sent bool `json:"-"`
	}{monitorAlert: a})
	if err != nil {
		return err
	}
	backoff := m.webhookBackoff
	for attempt := 1; ; attempt++ {
		err = m.post(ctx, body)
		if err == nil || attempt == m.webhookAttempts {
			return err
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(backoff):
		}
		backoff *= 2
	}
}

func (m *monitor) post(ctx context.Context, body []byte) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, m.webhook, bytes.NewReader(body))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := m.hc.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	io.Copy(io.Discard, io.LimitReader(resp.Body, 1<<16))
	if resp.StatusCode/100 != 2 {
		return fmt.Errorf("the webhook answered %s", resp.Status)
	}
	return nil
}

// forkFault reports a checkpoint that does not extend the last verified
// one, with the evidence, if it proves the fork, written to a file and
// given to the witnesses.
func (m *monitor) forkFault(ctx context.Context, fork *logclient.ForkError) error {
	a := &monitorAlert{Type: "fault", Origin: m.origin, Fault: fork.Error(), Size: fork.New.Size,
		ID: fmt.Sprintf("%s/fork/%d/%x", m.origin, fork.New.Size, fork.New.Hash[:8])}
	if ev, err := fork.Evidence(); err == nil {
		if text, err := ev.Marshal(); err == nil {
			a.Evidence = m.keepEvidence(ctx, ev.ID(), text)
		}
	}
	m.faults++
	m.st.Pending = append(m.st.Pending, a)
	if err := m.save(); err != nil {
		return err
	}
	return m.deliverPending(ctx)
}

// badEntryEvidence makes the evidence that the tree of cp holds the entry
// of f, which fails admission, and keeps it (keepEvidence). It returns the
// evidence's file, or "" if it could not be made, which it prints.
func (m *monitor) badEntryEvidence(ctx context.Context, cp logclient.Checkpoint, f logclient.Finding) string {
	b, err := m.v.ProveInclusion(ctx, cp, f.Index, f.LeafHash)
	if err != nil {
		fmt.Fprintf(m.stderr, "candor monitor: couldn't make the evidence of entry %d: %v\n", f.Index, err)
		return ""
	}
	ev := api.NewBadEntry(m.origin, cp.Signed, f.Index, f.Entry, b.Hashes)
	text, err := ev.Marshal()
	if err != nil {
		return ""
	}
	return m.keepEvidence(ctx, ev.ID(), text)
}

// keepEvidence writes evidence to <state>.evidence-<id> and gives it to
// the witnesses, and returns the file ("" if it could not be written).
// Failures are printed: the fault is reported all the same.
func (m *monitor) keepEvidence(ctx context.Context, id string, text []byte) string {
	path := m.evidence + id[:16]
	if err := os.WriteFile(path, text, 0o600); err != nil {
		fmt.Fprintf(m.stderr, "candor monitor: couldn't write the evidence: %v\n", err)
		path = ""
	}
	for _, u := range m.witnesses {
		if _, err := logclient.GiveEvidence(ctx, m.hc, u, text); err != nil {
			fmt.Fprintf(m.stderr, "candor monitor: couldn't give the evidence to the witness %s: %v\n", u, err)
		}
	}
	return path
}

// witnessEvidence is a witness's answer that it holds evidence against
// the log, to the checkpoint the monitor showed it.
type witnessEvidence struct {
	witness  string
	detail   string
	evidence []byte // the evidence the checkpoint completed, if any
}

func (e *witnessEvidence) Error() string {
	return fmt.Sprintf("the witness %s holds evidence that the log misbehaved: %s", e.witness, e.detail)
}

// crossCheck shows the last verified checkpoint to the policy's witnesses
// that have a URL, and compares the checkpoint each serves with it, so
// that a log showing the monitor another tree than the witnesses is
// caught by one side or the other: a witness that holds evidence against
// the log gives a *witnessEvidence, and a witness's checkpoint that the
// log's tiles prove a fork a *logclient.ForkError. What cannot be
// compared (a witness down, a checkpoint the log's tiles do not reach)
// is printed and left for the next poll.
func (m *monitor) crossCheck(ctx context.Context) error {
	cp, ok, err := m.v.Latest(ctx)
	if err != nil || !ok {
		return err
	}
	for _, u := range m.witnesses {
		r, err := logclient.ShowWitness(ctx, m.hc, u, cp.Signed)
		if err != nil {
			fmt.Fprintf(m.stderr, "candor monitor: couldn't show the checkpoint to the witness %s: %v\n", u, err)
			continue
		}
		if r.Result == "evidence" {
			return &witnessEvidence{witness: u, detail: r.Detail, evidence: r.Evidence}
		}
		signed, err := logclient.WitnessCheckpoint(ctx, m.hc, u, m.origin)
		if err != nil {
			fmt.Fprintf(m.stderr, "candor monitor: couldn't read the checkpoint of the witness %s: %v\n", u, err)
			continue
		}
		if signed == nil {
			continue
		}
		err = m.v.Compare(ctx, signed)
		var fork *logclient.ForkError
		switch {
		case err == nil:
		case errors.As(err, &fork):
			if _, eerr := fork.Evidence(); eerr == nil {
				return fork
			}
			fmt.Fprintf(m.stderr, "candor monitor: couldn't compare the checkpoint of the witness %s with the log's: %v\n", u, err)
		default:
			fmt.Fprintf(m.stderr, "candor monitor: the checkpoint of the witness %s: %v\n", u, err)
		}
	}
	return nil
}

// witnessFault reports that a witness holds evidence against the log,
// with the evidence, if the witness sent it, kept (keepEvidence).
func (m *monitor) witnessFault(ctx context.Context, held *witnessEvidence) error {
	a := &monitorAlert{Type: "fault", Origin: m.origin, Fault: held.Error(),
		ID: fmt.Sprintf("%s/witness-evidence/%s", m.origin, held.witness)}
	if held.evidence != nil {
		if ev, err := api.ParseEvidence(held.evidence); err == nil {
			a.Evidence = m.keepEvidence(ctx, ev.ID(), held.evidence)
			a.ID = fmt.Sprintf("%s/evidence/%s", m.origin, ev.ID())
		}
	}
	m.faults++
	m.st.Pending = append(m.st.Pending, a)
	if err := m.save(); err != nil {
		return err
	}
	return m.deliverPending(ctx)
}
