package cofferd

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/mod/sumdb/tlog"

	"github.com/cofferhq/coffer"
	"github.com/cofferhq/coffer/internal/translog"
	"github.com/cofferhq/coffer/internal/witness"
	"github.com/cofferhq/coffer/server"
	"github.com/cofferhq/coffer/store"
)

// Witnesses (docs/PROTOCOL.md, "Witnesses"). cofferd pushes every new
// signed checkpoint, including the periodic re-signature of an unchanged
// tree, to each -witness with the consistency proof from the size that
// witness last cosigned, and stores the cosignature lines it gets back next
// to the checkpoint. GET /v1/log/checkpoint then serves a checkpoint with
// cosignatures (witnessedLog). A witness that is down, slow or refusing
// never blocks a write: it is logged and counted, and retried later.

// WitnessFlag is one -witness URL=KEY.
type WitnessFlag struct {
	URL string
	Key string // cosignature/v1 verifier key
}

// WitnessFlags is the repeatable -witness (and COFFER_WITNESS,
// comma-separated); it implements flag.Value.
type WitnessFlags []WitnessFlag

func (f *WitnessFlags) String() string {
	var s []string
	for _, w := range *f {
		s = append(s, w.URL+"="+w.Key)
	}
	return strings.Join(s, ",")
}

func (f *WitnessFlags) Set(v string) error {
	for _, item := range strings.Split(v, ",") {
		item = strings.TrimSpace(item)
		if item == "" {
			continue
		}
		u, key, ok := strings.Cut(item, "=")
		if !ok {
			return fmt.Errorf("-witness %q: want URL=KEY", item)
		}
		pu, err := url.Parse(u)
		if err != nil || (pu.Scheme != "http" && pu.Scheme != "https") || pu.Host == "" {
			return fmt.Errorf("-witness %q: %q is not an http(s) URL", item, u)
		}
		if _, err := translog.NewWitnessVerifier(key); err != nil {
			return fmt.Errorf("-witness %q: %w", item, err)
		}
		*f = append(*f, WitnessFlag{URL: strings.TrimRight(u, "/"), Key: key})
	}
	return nil
}

const (
	// witnessPushInterval is how often the pusher looks for a checkpoint
	// signed by another replica or re-signed, and retries failed witnesses.
	witnessPushInterval = time.Second
	// witnessRetryBackoff is how long a witness that failed is left alone.
	witnessRetryBackoff = 5 * time.Second
	// witnessTimeout bounds one push; a witness catching up replays the
	// whole backlog in the first one.
	witnessTimeout = 2 * time.Minute
	// witnessLiveWindow: a witness that cosigned within it is live, and the
	// served checkpoint must carry its cosignature (see witnessedLog). It
	// spans a few re-signatures (store.DefaultCheckpointRefresh).
	witnessLiveWindow = 30 * time.Second
	recentCheckpoints = 8
)

type witnessTarget struct {
	url      string
	shown    string // url without any password, for the log
	v        *translog.WitnessVerifier
	size     int64     // the witness's size as last learned; -1 before
	pushed   string    // the last note it cosigned
	retryAt  time.Time // not before, after a failure
	lastOK   time.Time // its last cosignature (under witnessPusher.mu)
	lastFail time.Time // its last failure (under witnessPusher.mu)
}

// witnessPusher pushes checkpoints to the witnesses.
type witnessPusher struct {
	db      *store.DB
	log     *translog.Verifier
	targets []*witnessTarget
	hc      *http.Client
	logger  *slog.Logger
	now     func() time.Time

	pushes *prometheus.CounterVec
	size   *prometheus.GaugeVec
	mu     sync.Mutex // guards the targets' lastOK

	// lines collects, for the newest note, the cosignature lines gathered
	// so far, so that a witness answering late adds to the others' lines.
	note  string
	lines []string

	opened cosignedMemo // checked cosigned notes (cosignmemo.go)
	// recent holds the recent checkpoints with their generation, for
	// witnessedLog.LogCheckpointGen.
	recent store.CheckpointMemo[[]store.CheckpointRow]

	poke   chan struct{}
	done   chan struct{}
	cancel context.CancelFunc
}

func newWitnessPusher(db *store.DB, logKey string, ws []WitnessFlag, logger *slog.Logger, reg prometheus.Registerer) (*witnessPusher, error) {
	lv, err := translog.NewVerifier(logKey)
	if err != nil {
		return nil, err
	}
	p := &witnessPusher{db: db, log: lv, hc: &http.Client{Timeout: witnessTimeout}, logger: logger, now: time.Now,
		poke: make(chan struct{}, 1), done: make(chan struct{})}
	for _, w := range ws {
		v, err := translog.NewWitnessVerifier(w.Key)
		if err != nil {
			return nil, err
		}
		p.targets = append(p.targets, &witnessTarget{url: w.URL, shown: redactURL(w.URL), v: v, size: -1})
	}
	p.pushes = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "coffer_witness_pushes_total",
		Help: "Checkpoints pushed to witnesses, by witness and result (cosigned, conflict, refused, fork, error)."}, []string{"witness", "result"})
	p.size = prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "coffer_witness_cosigned_size",
		Help: "Tree size of the newest checkpoint each witness cosigned."}, []string{"witness"})
	if reg != nil {
		reg.MustRegister(p.pushes, p.size)
	}
	return p, nil
}

func (p *witnessPusher) start() {
	ctx, cancel := context.WithCancel(context.Background())
	p.cancel = cancel
	go p.run(ctx)
}

// Poke asks for a pass soon; it never blocks.
func (p *witnessPusher) Poke() {
	select {
	case p.poke <- struct{}{}:
	default:
	}
}

func (p *witnessPusher) Stop() {
	if p.cancel != nil {
		p.cancel()
		<-p.done
	}
}

func (p *witnessPusher) run(ctx context.Context) {
	defer close(p.done)
	t := time.NewTicker(witnessPushInterval)
	defer t.Stop()
	for {
		if err := p.pass(ctx); err != nil && ctx.Err() == nil {
			p.logger.Warn("witnesses: push pass failed", "err", err)
		}
		select {
		case <-ctx.Done():
			return
		case <-p.poke:
		case <-t.C:
		}
	}
}

// pass pushes the newest signed checkpoint to every witness that has not
// cosigned it, and stores what they return.
func (p *witnessPusher) pass(ctx context.Context) error {
	rows, err := p.db.RecentCheckpoints(ctx, 1)
	if err != nil || len(rows) == 0 {
		return err
	}
	row := rows[0]
	cp, err := p.log.Open(row.Checkpoint)
	if err != nil {
		return fmt.Errorf("the newest stored checkpoint does not verify under the log key: %w", err)
	}
	if row.Checkpoint != p.note {
		p.note, p.lines = row.Checkpoint, nil
	}
	now := p.now()
	var (
		wg    sync.WaitGroup
		mu    sync.Mutex
		fresh []string
	)
	for _, t := range p.targets {
		if t.pushed == row.Checkpoint || now.Before(t.retryAt) {
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			if line := p.pushOne(ctx, t, row.Checkpoint, cp); line != "" {
				mu.Lock()
				fresh = append(fresh, line)
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	if len(fresh) == 0 {
		return nil
	}
	p.lines = append(p.lines, fresh...)
	return p.store(ctx, row.Size, row.Checkpoint)
}

// pushOne pushes note to one witness, following its 409s to the size it
// names, and returns the verified cosignature line or "".
func (p *witnessPusher) pushOne(ctx context.Context, t *witnessTarget, note string, cp translog.Checkpoint) string {
	name := t.v.Name()
	fail := func(result, msg string, args ...any) string {
		t.retryAt = p.now().Add(witnessRetryBackoff)
		p.mu.Lock()
		t.lastFail = p.now()
		p.mu.Unlock()
		p.pushes.WithLabelValues(name, result).Inc()
		p.logger.Warn("witness: "+msg, append([]any{"witness", name, "url", t.shown, "size", cp.Size}, args...)...)
		return ""
	}
	for attempt := 0; attempt < 3; attempt++ {
		old := max(t.size, 0)
		if old > cp.Size {
			return fail("conflict", "the witness has cosigned a larger tree than this log's newest checkpoint (was the database restored from a backup?)", "witness_size", old)
		}
		var proof []tlog.Hash
		if old > 0 && old < cp.Size {
			hs, err := p.db.LogConsistencyProof(ctx, old, cp.Size)
			if err != nil {
				return fail("error", "cannot prove the checkpoint consistent with the witness's", "witness_size", old, "err", err)
			}
			for _, h := range hs {
				proof = append(proof, tlog.Hash(h))
			}
		}
		line, err := witness.Push(ctx, p.hc, t.url, old, proof, note)
		var conflict *witness.ConflictError
		switch {
		case err == nil:
			c, verr := translog.OpenCosigned(translog.AddCosignatures(note, line), p.log, []*translog.WitnessVerifier{t.v})
			if _, ok := c.Witnessed[name]; verr != nil || !ok || !c.Checkpoint.SameTree(cp) {
				return fail("error", "the witness answered with something that is not its cosignature of the checkpoint")
			}
			t.size, t.pushed, t.retryAt = cp.Size, note, time.Time{}
			p.mu.Lock()
			t.lastOK = p.now()
			p.mu.Unlock()
			p.pushes.WithLabelValues(name, "cosigned").Inc()
			p.size.WithLabelValues(name).Set(float64(cp.Size))
			return strings.TrimRight(line, "\n")
		case errors.As(err, &conflict) && conflict.Fork:
			p.logger.Error("witness: the witness holds a different tree of this size: it saw a fork of this log", "witness", name, "size", cp.Size)
			return fail("fork", "refused: fork")
		case errors.As(err, &conflict):
			p.pushes.WithLabelValues(name, "conflict").Inc()
			t.size = conflict.Size
			continue
		default:
			var re *witness.RemoteError
			if errors.As(err, &re) && re.Status == http.StatusUnprocessableEntity {
				return fail("refused", "the witness refused the checkpoint", "rule", string(re.Rule), "reason", re.Msg)
			}
			return fail("error", "push failed", "err", err)
		}
	}
	return fail("conflict", "the witness's size keeps changing under this replica's pushes")
}

// store merges the gathered lines into the row's cosigned note. The stored
// note is replaced only by one with at least as many cosignatures, so that a
// re-signed checkpoint cosigned by one witness does not hide the previous
// signature of the same tree cosigned by all.
func (p *witnessPusher) store(ctx context.Context, size int64, note string) error {
	for attempt := 0; attempt < 3; attempt++ {
		rows, err := p.db.RecentCheckpoints(ctx, recentCheckpoints)
		if err != nil {
			return err
		}
		var prev string
		found := false
		for _, r := range rows {
			if r.Size == size {
				prev, found = r.Cosigned, true
			}
		}
		if !found {
			return nil
		}
		next := translog.AddCosignatures(note, p.lines...)
		if prev != "" && noteBody(prev) == noteBody(note) {
			next = translog.AddCosignatures(prev, p.lines...)
		} else if prev != "" && p.countCosignatures(prev) > p.countCosignatures(next) {
			return nil
		}
		if next == prev {
			return nil
		}
		ok, err := p.db.SwapCosigned(ctx, size, prev, next)
		if err != nil || ok {
			return err
		}
	}
	return nil
}

func (p *witnessPusher) verifiers() []*translog.WitnessVerifier {
	vs := make([]*translog.WitnessVerifier, len(p.targets))
	for i, t := range p.targets {
		vs[i] = t.v
	}
	return vs
}

// live names the witnesses that cosigned within witnessLiveWindow and have
// not failed since.
func (p *witnessPusher) live() []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	var out []string
	cutoff := p.now().Add(-witnessLiveWindow)
	for _, t := range p.targets {
		if t.lastOK.After(cutoff) && t.lastOK.After(t.lastFail) {
			out = append(out, t.v.Name())
		}
	}
	return out
}

func (p *witnessPusher) countCosignatures(note string) int {
	c, err := translog.OpenCosigned(note, p.log, p.verifiers())
	if err != nil {
		return 0
	}
	return len(c.Witnessed)
}

func redactURL(s string) string {
	u, err := url.Parse(s)
	if err != nil {
		return "(unparsable URL)"
	}
	return u.Redacted()
}

func noteBody(note string) string {
	body, _, _ := strings.Cut(note, "\n\n")
	return body
}

// witnessedLog serves GET /v1/log/checkpoint with cosignatures: the newest
// of the recent checkpoints whose cosigned note carries a cosignature by
// every witness that is live (cosigned a push within witnessLiveWindow);
// with no live witness, the newest signed checkpoint. A witness that is down
// thus does not hold the served checkpoint back for clients whose quorum
// the others meet. Clients check quorum and freshness themselves; this only
// picks the checkpoint most likely to satisfy them, which may lag the
// newest signed one by the time the witnesses take to cosign.
//
// It embeds the store, not coffer.LogService, so that what the server finds
// on its log service by type assertion (server.MapProver) stays visible.
type witnessedLog struct {
	*store.DB
	p *witnessPusher
}

var (
	_ coffer.LogService = witnessedLog{}
	_ server.MapProver  = witnessedLog{}
)

func (l witnessedLog) LogCheckpoint(ctx context.Context) (string, error) {
	rows, err := l.p.db.RecentCheckpoints(ctx, recentCheckpoints)
	if err != nil || len(rows) == 0 {
		return l.DB.LogCheckpoint(ctx)
	}
	return l.choose(rows), nil
}

// LogCheckpointGen is LogCheckpoint over the recent checkpoints held in
// memory when they are of generation gen or later (store/checkpointgen.go:
// gen was read after the request began, so that what is served is never
// older than a checkpoint stored before it, by any replica). Which
// witnesses are live is judged now, as LogCheckpoint does.
func (l witnessedLog) LogCheckpointGen(ctx context.Context, gen int64) (string, error) {
	rows, ok := l.p.recent.Get(gen)
	if !ok {
		var (
			now int64
			err error
		)
		rows, now, err = l.p.db.RecentCheckpointsGen(ctx, recentCheckpoints)
		if err != nil || len(rows) == 0 {
			return l.DB.LogCheckpoint(ctx)
		}
		l.p.recent.Put(now, rows)
	}
	return l.choose(rows), nil
}

// choose picks the checkpoint to serve among the recent ones, newest
// first.
func (l witnessedLog) choose(rows []store.CheckpointRow) string {
	live := l.p.live()
	if len(live) == 0 {
		return rows[0].Checkpoint
	}
	for _, r := range rows {
		if r.Cosigned == "" {
			continue
		}
		witnessed, ok := l.p.witnessed(r.Cosigned)
		if !ok {
			continue
		}
		all := true
		for _, name := range live {
			if _, ok := witnessed[name]; !ok {
				all = false
			}
		}
		if all {
			return r.Cosigned
		}
	}
	return rows[0].Checkpoint
}

// setupWitnesses prepares the pusher for the configured witnesses (and, in
// dev mode, the co-located one) before the server is built, so that the
// checkpoint endpoint serves cosigned checkpoints from the first request.
func (m *Main) setupWitnesses() error {
	ws := append([]WitnessFlag(nil), m.Config.Witnesses...)
	if m.Config.Dev {
		dw, err := m.loadDevWitnessKey()
		if err != nil {
			return fmt.Errorf("dev witness: %w", err)
		}
		m.devWit = dw
		// Its URL is known once it listens (startWitnesses).
		ws = append(ws, WitnessFlag{Key: dw.vkey})
	}
	if len(ws) == 0 {
		return nil
	}
	p, err := newWitnessPusher(m.db, m.logKey, ws, m.logger, m.registry)
	if err != nil {
		return err
	}
	m.pusher = p
	if m.seq != nil {
		m.seq.setAfterWrite(p.Poke)
	}
	return nil
}

// startWitnesses starts the dev witness, now that cofferd serves the leaves
// it fetches, and the pusher.
func (m *Main) startWitnesses() error {
	if m.pusher == nil {
		return nil
	}
	if m.devWit != nil {
		if m.tls {
			m.logger.Warn("dev mode: no co-located witness with TLS (it would have to trust the dev certificate); configure -witness instead")
			m.pusher.targets = m.pusher.targets[:len(m.pusher.targets)-1]
			m.devWit = nil
		} else {
			if err := m.devWit.start(m, m.URL()); err != nil {
				return fmt.Errorf("dev witness: %w", err)
			}
			t := m.pusher.targets[len(m.pusher.targets)-1]
			t.url, t.shown = m.devWit.url, m.devWit.url
		}
	}
	for _, t := range m.pusher.targets {
		m.logger.Info("witness configured", "witness", t.v.Name(), "url", t.shown)
	}
	m.pusher.start()
	return nil
}

// logService is the log as the server serves it: with cosigned checkpoints
// when witnesses are configured.
func (m *Main) logService() coffer.LogService {
	if m.pusher == nil {
		return m.db
	}
	return witnessedLog{DB: m.db, p: m.pusher}
}

// WitnessKeys returns the verifier keys of the witnesses cofferd pushes to
// (the dev witness's included), valid after Run.
func (m *Main) WitnessKeys() []string {
	if m.pusher == nil {
		return nil
	}
	var out []string
	for _, t := range m.pusher.targets {
		out = append(out, t.v.Key())
	}
	return out
}
