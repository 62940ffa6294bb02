// Package audit is coffer-audit's logic, testable without the CLI:
//
//   - DB audits a database through a read-only snapshot: the schema
//     against a classified allowlist, every key, wrap, link and signature
//     for its suite, every membership chain with the one verifier, the
//     membership and wraps it implies, the metadata ciphertexts, and the
//     transparency log against its signed checkpoint.
//   - Witness mirrors the public transparency log: it checks that the log
//     only grew by appends since the last run and re-verifies every new
//     entry.
//   - Canary runs a workload with its own clients and searches everything
//     the server stores or logs for the secrets those clients made.
//
// Each returns a Report: findings name what failed, and a report is clean
// only when there are none. docs/AUDIT.md says what a clean report proves.
package audit

import (
	"encoding/json"
	"fmt"
	"io"
	"sort"
	"sync"
	"time"
)

// Finding is one failed check.
type Finding struct {
	// Check is the kind of check: schema, account, chain, group, member,
	// wrap, link, metadata, resource, log, witness, canary, ...
	Check string `json:"check"`
	// Object names what failed: a table and column, a group and seq, a
	// leaf index, a file and offset.
	Object  string `json:"object"`
	Message string `json:"message"`
}

// maxFindings bounds the findings kept in a report; the rest are counted.
const maxFindings = 1000

// Report is the outcome of one audit.
type Report struct {
	Mode     string           `json:"mode"`
	Clean    bool             `json:"clean"`
	Findings []Finding        `json:"findings"`
	Dropped  int              `json:"findings_not_listed,omitempty"`
	Stats    map[string]int64 `json:"stats"`
	Notes    []string         `json:"notes,omitempty"`
	Started  time.Time        `json:"started"`
	Duration string           `json:"duration"`

	mu sync.Mutex
}

func newReport(mode string) *Report {
	return &Report{Mode: mode, Stats: map[string]int64{}, Findings: []Finding{}, Started: time.Now()}
}

// Fail records a finding.
func (r *Report) Fail(check, object, format string, args ...any) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(r.Findings) >= maxFindings {
		r.Dropped++
		return
	}
	r.Findings = append(r.Findings, Finding{Check: check, Object: object, Message: fmt.Sprintf(format, args...)})
}

// Note records something the reader should know that is not a failure
// (for example a check that could not run for lack of a key).
func (r *Report) Note(format string, args ...any) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.Notes = append(r.Notes, fmt.Sprintf(format, args...))
}

func (r *Report) count(stat string, n int64) {
	r.mu.Lock()
	r.Stats[stat] += n
	r.mu.Unlock()
}

func (r *Report) finish() *Report {
	r.Clean = len(r.Findings) == 0 && r.Dropped == 0
	r.Duration = time.Since(r.Started).Round(time.Millisecond).String()
	return r
}

// WriteJSON writes the report as indented JSON.
func (r *Report) WriteJSON(w io.Writer) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(r)
}

// WriteText writes a human summary.
func (r *Report) WriteText(w io.Writer) {
	verdict := "CLEAN"
	if !r.Clean {
		verdict = fmt.Sprintf("FAILED: %d finding(s)", len(r.Findings)+r.Dropped)
	}
	fmt.Fprintf(w, "coffer-audit %s: %s (%s)\n", r.Mode, verdict, r.Duration)
	keys := make([]string, 0, len(r.Stats))
	for k := range r.Stats {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	if len(keys) > 0 {
		fmt.Fprintln(w, "\nchecked:")
		for _, k := range keys {
			fmt.Fprintf(w, "  %-28s %d\n", k, r.Stats[k])
		}
	}
	for _, n := range r.Notes {
		fmt.Fprintf(w, "\nnote: %s\n", n)
	}
	if len(r.Findings) > 0 {
		fmt.Fprintln(w, "\nfindings:")
		for _, f := range r.Findings {
			fmt.Fprintf(w, "  [%s] %s: %s\n", f.Check, f.Object, f.Message)
		}
		if r.Dropped > 0 {
			fmt.Fprintf(w, "  … and %d more\n", r.Dropped)
		}
	}
}

// progress prints throttled progress lines to w (stderr in the CLI).
type progress struct {
	w    io.Writer
	last time.Time
}

func (p *progress) phase(format string, args ...any) {
	if p == nil || p.w == nil {
		return
	}
	fmt.Fprintf(p.w, "coffer-audit: "+format+"\n", args...)
	p.last = time.Now()
}

func (p *progress) tick(format string, args ...any) {
	if p == nil || p.w == nil || time.Since(p.last) < 2*time.Second {
		return
	}
	p.phase(format, args...)
}
