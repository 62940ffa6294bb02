package e2e_test

import (
	"context"
	"crypto/ed25519"
	"crypto/hpke"
	"crypto/rand"
	"fmt"
	"os"
	"runtime"
	"runtime/debug"
	"runtime/metrics"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/cofferhq/coffer"
	"github.com/cofferhq/coffer/clientlib"
	"github.com/cofferhq/coffer/internal/groupkey"
	"github.com/cofferhq/coffer/internal/proccpu"
	"github.com/cofferhq/coffer/store"
)

// Run with:
//
//	go test ./e2e -run '^$' -bench 'RemoveMember|Sync10k' -benchtime 3x
//
// Each benchmark builds its fixture once (outside the timer), then measures
// the client-visible operation end to end against a real cofferd and
// PostgreSQL, beside the limit it is compared with in the same run.

// mustBulkAccounts registers n accounts by writing them straight into the
// database: registering 10,000 devices over HTTP is not what is measured.
func mustBulkAccounts(tb testing.TB, srv databaseServer, prefix string, n int) []string {
	tb.Helper()
	rows := make([][]any, n)
	handles := make([]string, n)
	for i := range rows {
		handles[i] = fmt.Sprintf("%s%05d", prefix, i)
		id, err := clientlib.GenerateIdentity(coffer.Handle(handles[i]))
		if err != nil {
			tb.Fatal(err)
		}
		pub := id.Public()
		rows[i] = []any{coffer.NewAccountID(), handles[i], pub.Marshal(), id.SelfSignature(),
			[]byte(pub.SigningKey), pub.EncryptionKey, time.Now()}
	}
	db := mustDBAt(tb, srv.DatabaseURL())
	if _, err := db.CopyFrom(context.Background(), pgx.Identifier{"accounts"},
		[]string{"id", "handle", "identity", "self_signature", "signing_key", "encryption_key", "created_at"},
		pgx.CopyFromRows(rows)); err != nil {
		tb.Fatal(err)
	}
	mustBackfillLog(tb, srv)
	return handles
}

// mustBackfillLog puts rows written straight into the database into the
// transparency log, as registration and commits do in their transactions;
// clients refuse anything the log does not include.
func mustBackfillLog(tb testing.TB, srv databaseServer) {
	tb.Helper()
	db, err := store.Open(context.Background(), srv.DatabaseURL())
	if err != nil {
		tb.Fatal(err)
	}
	defer db.Close()
	if _, err := db.BackfillLog(context.Background()); err != nil {
		tb.Fatal(err)
	}
}

func BenchmarkRemoveMember(b *testing.B) {
	for _, n := range []int{1000, 10000} {
		b.Run(fmt.Sprintf("members=%d", n), func(b *testing.B) {
			if testing.Short() && n > 1000 {
				// .ci/run runs every benchmark once with -short: the
				// smallest size covers the same code in a fraction of the
				// 10k setup's minutes. Run the 10k size without -short.
				b.Skip("-short: the 1,000-member size runs instead")
			}
			ctx := context.Background()
			// cofferd runs as its own process, so that the heap measured
			// here is the client's alone; the server's peak is its
			// resident set's. Building the group looks up and proves
			// 10,000 accounts from one client, far above an account's
			// default request rate.
			srv := startBenchProcess(b, "-account-rate-limit", "10000000", "-log-rate-limit", "10000000")
			owner, ownerKS := newProcessClient(b, srv, "owner", &clientlib.Options{TrustOnFirstUse: true})
			handles := mustBulkAccounts(b, srv, "m", n)
			g := mustGroup(b, owner, "big", nil)
			for i := 0; i < n; i += 5000 {
				if err := owner.AddMembers(ctx, g, handles[i:min(i+5000, n)], coffer.RoleReader); err != nil {
					b.Fatal(err)
				}
			}
			// The limit: one goroutine sealing the epoch key to every
			// member, with keys already parsed.
			pks := make([]hpke.PublicKey, n)
			members, err := owner.Members(ctx, g)
			if err != nil {
				b.Fatal(err)
			}
			for i, m := range members[:n] {
				if pks[i], err = coffer.KEM().NewPublicKey(m.EncryptionKey); err != nil {
					b.Fatal(err)
				}
			}
			k := groupkey.NewEpochKey()
			sealAll := func(b *testing.B) {
				for _, pk := range pks {
					if _, err := hpke.Seal(pk, hpke.HKDFSHA256(), hpke.AES256GCM(), []byte("info"), k[:]); err != nil {
						b.Fatal(err)
					}
				}
			}
			wrapBytes := n * coffer.WrapSize
			var limit, limitCPU time.Duration
			b.Run("limit=raw-seal-loop-1-goroutine", func(b *testing.B) {
				c0 := cpuTime(b, os.Getpid())
				for range b.N {
					sealAll(b)
				}
				limit = b.Elapsed() / time.Duration(b.N)
				limitCPU = (cpuTime(b, os.Getpid()) - c0) / time.Duration(b.N)
				b.ReportMetric(float64(limitCPU.Milliseconds()), "cpu-ms")
				// The same heap measures as the removal's, of the loop,
				// outside the timer: hpke.Seal's own garbage is most of
				// what the first one counts.
				b.StopTimer()
				var peak, live peakHeap
				peak.start()
				sealAll(b)
				peak.stop()
				live.startLive()
				sealAll(b)
				live.stop()
				peak.report(b, wrapBytes, 0)
				live.reportLive(b, wrapBytes)
			})
			next := 0
			b.Run("remove", func(b *testing.B) {
				var (
					peak, live        peakHeap
					serverPeak        int64
					clientCPU, srvCPU time.Duration
				)
				for range b.N {
					b.StopTimer()
					peak.start()
					base := srv.resetPeakRSS(b)
					c0, s0 := cpuTime(b, os.Getpid()), srv.cpuTime(b)
					b.StartTimer()
					if err := owner.RemoveMember(ctx, g, handles[next]); err != nil {
						b.Fatal(err)
					}
					b.StopTimer()
					clientCPU += cpuTime(b, os.Getpid()) - c0
					srvCPU += srv.cpuTime(b) - s0
					peak.stop()
					serverPeak = max(serverPeak, srv.peakRSS(b)-base)
					b.StartTimer()
					next++
				}
				// One more removal, outside the timer, for what a removal
				// holds at its peak (peakHeap.startLive).
				b.StopTimer()
				live.startLive()
				if err := owner.RemoveMember(ctx, g, handles[next]); err != nil {
					b.Fatal(err)
				}
				live.stop()
				next++
				b.StartTimer()
				reportAgainstLimit(b, limit, 1.1)
				peak.report(b, wrapBytes, 3)
				live.reportLive(b, wrapBytes)
				b.ReportMetric(float64(serverPeak)/1e6, "server-peak-rss-rise-MB")
				b.ReportMetric(float64(serverPeak)/float64(wrapBytes), "server-peak-x-wrap-bytes")
				// CPU time per removal, also in units of the limit's own
				// CPU time, which the machine's load moves much less than
				// wall time: the client's includes its sealing; PostgreSQL's
				// is not counted.
				b.ReportMetric(float64((clientCPU / time.Duration(b.N)).Milliseconds()), "client-cpu-ms")
				b.ReportMetric(float64((srvCPU / time.Duration(b.N)).Milliseconds()), "server-cpu-ms")
				if limitCPU > 0 {
					b.ReportMetric(float64(clientCPU)/float64(b.N)/float64(limitCPU), "client-cpu-x-limit-cpu")
					b.ReportMetric(float64(srvCPU)/float64(b.N)/float64(limitCPU), "server-cpu-x-limit-cpu")
				}
			})
			// The same from a freshly started client, which must parse
			// every member's X-Wing key once before sealing to it.
			b.Run("remove-cold-client", func(b *testing.B) {
				for range b.N {
					b.StopTimer()
					cold, err := clientlib.New(srv.URL(), ownerKS, &clientlib.Options{TrustOnFirstUse: true})
					if err != nil {
						b.Fatal(err)
					}
					b.StartTimer()
					if err := cold.RemoveMember(ctx, g, handles[next]); err != nil {
						b.Fatal(err)
					}
					next++
				}
				reportAgainstLimit(b, limit, 1.1)
			})
		})
	}
}

// peakHeap samples the heap (live objects and garbage not yet collected)
// of this process during an operation, from a collected heap before it.
type peakHeap struct {
	base, max uint64
	worst     uint64
	gcPercent int // before startLive; -2 after start
	quit      chan struct{}
	done      chan struct{}
}

func heapObjects() uint64 {
	s := []metrics.Sample{{Name: "/memory/classes/heap/objects:bytes"}}
	metrics.Read(s)
	return s[0].Value.Uint64()
}

func (p *peakHeap) start() {
	runtime.GC()
	p.gcPercent = -2
	p.base, p.max = heapObjects(), 0
	p.quit, p.done = make(chan struct{}), make(chan struct{})
	go func() {
		defer close(p.done)
		t := time.NewTicker(200 * time.Microsecond)
		defer t.Stop()
		for {
			if h := heapObjects(); h > p.max {
				p.max = h
			}
			select {
			case <-p.quit:
				return
			case <-t.C:
			}
		}
	}()
}

// startLive is start with the collector running almost continuously
// (GOGC=5) until stop: the heap's rise is then what the operation holds
// live at its peak (plus 5% of the heap and what is allocated while a
// collection runs), not the garbage that the collector's pacing lets pile
// up, which start's measure counts and which grows with the size of the
// heap the process already holds.
func (p *peakHeap) startLive() {
	p.start()
	p.gcPercent = debug.SetGCPercent(5)
}

func (p *peakHeap) stop() {
	close(p.quit)
	<-p.done
	if p.gcPercent != -2 {
		debug.SetGCPercent(p.gcPercent)
	}
	if p.max > p.base && p.max-p.base > p.worst {
		p.worst = p.max - p.base
	}
}

// report prints the largest peak of the run beside its limit, a multiple
// of ref bytes.
func (p *peakHeap) report(b *testing.B, ref int, target float64) {
	b.ReportMetric(float64(p.worst)/1e6, "peak-heap-MB")
	b.ReportMetric(float64(p.worst)/float64(ref), "peak-x-wrap-bytes")
	if target > 0 {
		b.ReportMetric(target, "peak-target-x")
	}
}

// reportLive is report for a measure taken with startLive.
func (p *peakHeap) reportLive(b *testing.B, ref int) {
	b.ReportMetric(float64(p.worst)/1e6, "live-peak-MB")
	b.ReportMetric(float64(p.worst)/float64(ref), "live-peak-x-wrap-bytes")
}

// mustLongHistory writes a chain of n commits for g straight into the
// database (and the log), signed with the owner's own key: it alternates
// adding a member with removing it (and rotating), so the verifier does
// real work on every commit. It returns the signed commits.
func mustLongHistory(tb testing.TB, srv *Server, owner *clientlib.Client, ks clientlib.KeyStore, g coffer.GroupID, n uint64) []coffer.SignedCommit {
	tb.Helper()
	ctx := context.Background()
	res, err := owner.Sync(ctx, g)
	if err != nil {
		tb.Fatal(err)
	}
	s, key := res.State, signingKeyOf(tb, ks)
	var rows [][]any
	var out []coffer.SignedCommit
	var newcomer coffer.AccountID
	// The last commit never adds: the members a sync ends with have their
	// identities proven in the heads map, and these accounts were never
	// registered.
	for s.Seq < n {
		kc, _ := s.KeyCommitment(s.Epoch)
		c := &coffer.Commit{Group: g, Seq: s.Seq + 1, Prev: s.Head, Epoch: s.Epoch, Author: owner.AccountID(),
			Time: time.Now().UnixMilli(), ShareHistory: s.ShareHistory, KeyCommitment: kc}
		switch {
		case s.Seq%2 == 1 && s.Seq+1 == n:
			c.Epoch++
			rand.Read(c.KeyCommitment[:])
			c.Ops = []coffer.Op{{Kind: coffer.OpRotate}}
		case s.Seq%2 == 1:
			id, _ := clientlib.GenerateIdentity(coffer.Handle(fmt.Sprintf("x%05d", s.Seq)))
			newcomer = coffer.NewAccountID()
			c.Ops = []coffer.Op{{Kind: coffer.OpAdd, Member: newcomer, Handle: id.Handle(), Role: coffer.RoleReader,
				SigningKey: id.Public().SigningKey, EncryptionKey: id.Public().EncryptionKey}}
		default:
			c.Epoch++
			rand.Read(c.KeyCommitment[:])
			c.Ops = []coffer.Op{{Kind: coffer.OpRemove, Member: newcomer}, {Kind: coffer.OpRotate}}
		}
		sc := coffer.SignCommit(c, key)
		if err := s.Apply(sc); err != nil {
			tb.Fatal(err)
		}
		h := sc.Hash()
		rows = append(rows, []any{g, int64(c.Seq), sc.Body, sc.Signature, h[:], c.Author, int64(c.Epoch), time.Now()})
		out = append(out, sc)
	}
	db := mustDB(tb, srv)
	if _, err := db.CopyFrom(ctx, pgx.Identifier{"commits"},
		[]string{"group_id", "seq", "body", "signature", "hash", "author_id", "epoch", "created_at"}, pgx.CopyFromRows(rows)); err != nil {
		tb.Fatal(err)
	}
	// A checkpoint of before the state was kept in rows, which cofferd
	// still reads (and stores in rows at the next commit).
	state, _ := s.MarshalBinary()
	mustExec(tb, db, `UPDATE groups SET head_seq = $2, head_hash = $3, epoch = $4, state = $5, state_rows = false WHERE id = $1`,
		g, int64(s.Seq), s.Head[:], int64(s.Epoch), state)
	mustExec(tb, db, `DELETE FROM group_state_accounts WHERE group_id = $1`, g)
	mustBackfillLog(tb, srv)
	return out
}

// BenchmarkSync10kCommits times a new device's sync of 10,000 commits
// beside its limit, and reports the CPU the sync took in this process
// (client and cofferd) and in PostgreSQL: on a shared machine the wall
// times move with the load, the CPU much less.
func BenchmarkSync10kCommits(b *testing.B) {
	ctx := context.Background()
	srv := MustServer(b)
	owner, ks := newClient(b, srv, "owner", nil)
	g := mustGroup(b, owner, "long", nil)
	history := mustLongHistory(b, srv, owner, ks, g, 10000)
	var genesis coffer.SignedCommit
	if err := mustDB(b, srv).QueryRow(ctx, `SELECT body, signature FROM commits WHERE group_id = $1 AND seq = 1`, g).
		Scan(&genesis.Body, &genesis.Signature); err != nil {
		b.Fatal(err)
	}
	history = append([]coffer.SignedCommit{genesis}, history...)
	key := signingKeyOf(b, ks)

	identity, _ := ks.Get("identity")
	account, _ := ks.Get("account")

	// The limit: the same 10,000 signatures verified with ed25519.Verify
	// on one goroutine, messages prepared outside the timer.
	pub := key.Public().(ed25519.PublicKey)
	var msgs, sigs [][]byte
	for _, sc := range history {
		msgs, sigs = append(msgs, coffer.SignedMessage(coffer.LabelCommit, sc.Body)), append(sigs, sc.Signature)
	}
	var limit time.Duration
	b.Run("limit=ed25519-verify-1-goroutine", func(b *testing.B) {
		for range b.N {
			for i := range msgs {
				if !ed25519.Verify(pub, msgs[i], sigs[i]) {
					b.Fatal("a signature does not verify")
				}
			}
		}
		limit = b.Elapsed() / time.Duration(b.N)
	})
	b.Run("sync", func(b *testing.B) {
		// The cluster's postmaster: its tree's CPU is PostgreSQL's share.
		var backend int
		if err := mustDB(b, srv).QueryRow(ctx, `SELECT pg_backend_pid()`).Scan(&backend); err != nil {
			b.Fatal(err)
		}
		postmaster := proccpu.Parent(backend)
		var cpu, pgCPU time.Duration
		defer func() {
			b.ReportMetric(float64(cpu.Milliseconds())/float64(b.N), "cpu-ms/op")
			b.ReportMetric(float64(pgCPU.Milliseconds())/float64(b.N), "pg-cpu-ms/op")
		}()
		for range b.N {
			b.StopTimer()
			fresh := clientlib.NewMemoryKeyStore()
			fresh.Put("identity", identity)
			fresh.Put("account", account)
			c, err := clientlib.New(srv.URL(), fresh, nil)
			if err != nil {
				b.Fatal(err)
			}
			if err := c.Login(ctx); err != nil {
				b.Fatal(err)
			}
			b.StartTimer()
			before, pgBefore := proccpu.Self(), proccpu.Tree(postmaster)
			res, err := c.Sync(ctx, g)
			cpu += proccpu.Self() - before
			pgCPU += proccpu.Tree(postmaster) - pgBefore
			if err != nil {
				b.Fatal(err)
			}
			if res.New != 10000 {
				b.Fatalf("verified %d commits, want 10000", res.New)
			}
		}
		reportAgainstLimit(b, limit, 1.5)
	})
}

// reportAgainstLimit prints, beside an operation's time, the time of its
// limit measured in the same run, the ratio and the target ratio.
func reportAgainstLimit(b *testing.B, limit time.Duration, target float64) {
	if limit <= 0 || b.N == 0 {
		return
	}
	op := b.Elapsed() / time.Duration(b.N)
	b.ReportMetric(float64(limit.Microseconds())/1000, "limit-ms")
	b.ReportMetric(float64(op)/float64(limit), "x-limit")
	b.ReportMetric(target, "target-x")
}
