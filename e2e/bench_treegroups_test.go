package e2e_test

import (
	"context"
	"crypto/rand"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"path/filepath"
	"runtime"
	"runtime/pprof"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cofferhq/coffer"
	"github.com/cofferhq/coffer/clientlib"
	"github.com/cofferhq/coffer/internal/cofferd"
	"github.com/cofferhq/coffer/internal/keymemo"
	"github.com/cofferhq/coffer/internal/userkey"
	"github.com/cofferhq/coffer/store"
)

// BenchmarkRemoveMemberTree times removing one member of a tree group end
// to end (the remover's sync, commit and proof, against a real cofferd and
// PostgreSQL), beside a pairwise suite v2 group of the same accounts, and
// reports what the remover uploads and what a receiving member (an
// ordinary member that synced before) downloads and spends to get the new
// epoch key. Once per size it also reports a new member's first sync
// (join-sync-ms, B-join-downloaded): added by the owner, from an empty key
// store to the current epoch key:
//
//	go test ./e2e -run '^$' -bench 'RemoveMemberTree' -benchtime 5x -timeout 120m
//
// COFFER_BENCH_PROFILE=<dir> writes a CPU profile of each new member's
// first sync there (joinProfile).
//
// Sub-benchmarks end in the member count: tree at 1k, 10k and 100k,
// pairwise-1k and pairwise-10k. -short (CI) runs the 1k sizes only.
func BenchmarkRemoveMemberTree(b *testing.B) {
	sizes := []struct {
		name string
		n    int
		tree bool
	}{
		{"pairwise-1k", 1000, false}, {"1k", 1000, true},
		{"pairwise-10k", 10000, false}, {"10k", 10000, true},
		{"100k", 100000, true},
	}
	ctx := context.Background()
	f := newTreeBench(b)
	for _, size := range sizes {
		var (
			g                coffer.GroupID
			handles          []string
			next             int
			joinMS, joinDown float64
		)
		b.Run(size.name, func(b *testing.B) {
			if testing.Short() && size.n > 1000 {
				b.Skip("-short: the 1,000-member sizes run instead")
			}
			// The framework calls this again for each b.N it tries: the
			// group is built once.
			if handles == nil {
				g, handles = f.group(b, size.n, size.tree)
			}
			if next+b.N > len(handles) {
				b.Fatalf("%d removals asked of a group of %d", next+b.N, size.n)
			}
			var up, down int64
			var recv time.Duration
			for range b.N {
				b.StopTimer()
				f.up.Store(0)
				b.StartTimer()
				if err := f.owner.RemoveMember(ctx, g, handles[next]); err != nil {
					b.Fatal(err)
				}
				b.StopTimer()
				up += f.up.Load()
				next++
				f.down.Store(0)
				t0 := time.Now()
				if _, err := f.reader.ReadableEpochs(ctx, g); err != nil {
					b.Fatal(err)
				}
				recv += time.Since(t0)
				down += f.down.Load()
				b.StartTimer()
			}
			b.ReportMetric(float64(up)/float64(b.N), "B-uploaded/op")
			b.ReportMetric(float64(down)/float64(b.N), "B-downloaded/op")
			b.ReportMetric(float64(recv.Microseconds())/1000/float64(b.N), "receive-ms/op")
			// A new member's first sync, once per size, untimed by ns/op:
			// an account made through clientlib, added by the owner, then
			// its ReadableEpochs from an empty key store.
			if joinMS == 0 {
				b.StopTimer()
				joinMS, joinDown = f.join(b, g, "joiner-"+size.name)
				b.StartTimer()
			}
			b.ReportMetric(joinMS, "join-sync-ms")
			b.ReportMetric(joinDown, "B-join-downloaded")
		})
	}
}

// treeBench is one server behind a byte-counting proxy, a pool of suite
// v2 accounts written straight into its database, an owner and a
// receiving member (both made through clientlib).
type treeBench struct {
	srv           *Server
	url           string
	up, down      atomic.Int64 // request and response body bytes through the proxy
	owner, reader *clientlib.Client
	pool          []string
	groups        int
}

func newTreeBench(b *testing.B) *treeBench {
	f := &treeBench{}
	var rp atomic.Pointer[httputil.ReverseProxy]
	ps := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Body != nil {
			r.Body = &countingBody{r.Body, &f.up}
		}
		rp.Load().ServeHTTP(&countingWriter{w, &f.down}, r)
	}))
	b.Cleanup(ps.Close)
	f.url = ps.URL
	f.srv = MustServerWith(b, func(c *cofferd.Config) {
		c.Origins += "," + ps.URL
		c.AccountRateLimit, c.LogRateLimit, c.AuthRateLimit = 1e7, 1e7, 1e7
	})
	target, _ := url.Parse(f.srv.URL())
	rp.Store(httputil.NewSingleHostReverseProxy(target))
	f.owner = MustNewClientWith(b, f.url, NewCanaryKeyStore(), &clientlib.Options{SuiteV2Groups: true, TrustOnFirstUse: true})
	if _, err := f.owner.CreateAccount(context.Background(), "owner", "desk"); err != nil {
		b.Fatal(err)
	}
	f.reader = MustNewClientWith(b, f.url, NewCanaryKeyStore(), &clientlib.Options{SuiteV2Groups: true, TrustOnFirstUse: true})
	if _, err := f.reader.CreateAccount(context.Background(), "reader", "desk"); err != nil {
		b.Fatal(err)
	}
	return f
}

// join makes an account named handle, has the owner add it to g, and
// returns the milliseconds and response bytes of its first sync to the
// current epoch key.
func (f *treeBench) join(b *testing.B, g coffer.GroupID, handle string) (ms, down float64) {
	ctx := context.Background()
	c := MustNewClientWith(b, f.url, NewCanaryKeyStore(), &clientlib.Options{SuiteV2Groups: true, TrustOnFirstUse: true})
	if _, err := c.CreateAccount(ctx, handle, "desk"); err != nil {
		b.Fatal(err)
	}
	if err := f.owner.AddMember(ctx, g, handle, coffer.RoleReader); err != nil {
		b.Fatal(err)
	}
	f.down.Store(0)
	// The server and the owner checked every member's key in this
	// process; a new member's device has not.
	keymemo.Forget()
	stop := joinProfile(b, handle)
	t0 := time.Now()
	epochs, err := c.ReadableEpochs(ctx, g)
	stop()
	if err != nil {
		b.Fatal(err)
	}
	if len(epochs) == 0 {
		b.Fatalf("%s can read no epoch of the group it joined", handle)
	}
	ms, down = float64(time.Since(t0).Microseconds())/1000, float64(f.down.Load())
	// The receiving member catches up on the add, so that the next
	// removal's download is that removal's alone.
	if _, err := f.reader.ReadableEpochs(ctx, g); err != nil {
		b.Fatal(err)
	}
	return ms, down
}

// joinProfile starts a CPU profile of a new member's first sync when
// COFFER_BENCH_PROFILE names a directory (the file is join-<handle>.pprof
// there), and returns what stops it: the join is one long call, so a
// profile costs it little, unlike the short timed removals.
func joinProfile(b *testing.B, handle string) (stop func()) {
	dir := os.Getenv("COFFER_BENCH_PROFILE")
	if dir == "" {
		return func() {}
	}
	f, err := os.Create(filepath.Join(dir, "join-"+handle+".pprof"))
	if err != nil {
		b.Fatal(err)
	}
	if err := pprof.StartCPUProfile(f); err != nil {
		b.Fatal(err)
	}
	return func() {
		pprof.StopCPUProfile()
		if err := f.Close(); err != nil {
			b.Fatal(err)
		}
	}
}

// group makes a group of the owner, the reader and n-2 pool accounts
// (growing the pool as needed) and returns it with the handles to remove,
// in the order they joined.
func (f *treeBench) group(b *testing.B, n int, tree bool) (coffer.GroupID, []string) {
	ctx := context.Background()
	if len(f.pool) < n {
		t0 := time.Now()
		f.pool = append(f.pool, mustBulkV2Accounts(b, f.srv, f.url, fmt.Sprintf("b%d-", len(f.pool)), n-len(f.pool))...)
		b.Logf("%d suite v2 accounts written in %s", len(f.pool), time.Since(t0).Round(time.Millisecond))
	}
	t0 := time.Now()
	f.groups++
	g, err := f.owner.CreateGroup(ctx, fmt.Sprintf("bench %d", f.groups), &clientlib.GroupOptions{Tree: tree})
	if err != nil {
		b.Fatal(err)
	}
	if err := f.owner.AddMember(ctx, g, "reader", coffer.RoleReader); err != nil {
		b.Fatal(err)
	}
	members := f.pool[:n-2]
	// A batch's commit stays under the commit size limit: in a tree
	// group each added leaf costs its key and about two rekey
	// ciphertexts and a key.
	batch := 5000
	if tree {
		batch = 2500
	}
	for i := 0; i < len(members); i += batch {
		if err := f.owner.AddMembers(ctx, g, members[i:min(i+batch, len(members))], coffer.RoleReader); err != nil {
			b.Fatal(err)
		}
	}
	if _, err := f.reader.ReadableEpochs(ctx, g); err != nil {
		b.Fatal(err)
	}
	b.Logf("group of %d (tree %v) built in %s", n, tree, time.Since(t0).Round(time.Millisecond))
	return g, members
}

type countingBody struct {
	io.ReadCloser
	n *atomic.Int64
}

func (c *countingBody) Read(p []byte) (int, error) {
	n, err := c.ReadCloser.Read(p)
	c.n.Add(int64(n))
	return n, err
}

type countingWriter struct {
	http.ResponseWriter
	n *atomic.Int64
}

func (c *countingWriter) Write(p []byte) (int, error) {
	n, err := c.ResponseWriter.Write(p)
	c.n.Add(int64(n))
	return n, err
}

func (c *countingWriter) Unwrap() http.ResponseWriter { return c.ResponseWriter }

// mustBulkV2Accounts registers n suite v2 accounts (handles prefix and a
// number), each with its own device, user and recovery keys and a genesis
// bound to origin, by storing each genesis straight through the store on
// every core: registering them over HTTP is not what is measured.
func mustBulkV2Accounts(tb testing.TB, srv databaseServer, origin, prefix string, n int) []string {
	tb.Helper()
	ctx := context.Background()
	db, err := store.Open(ctx, srv.DatabaseURL())
	if err != nil {
		tb.Fatal(err)
	}
	defer db.Close()
	u, err := url.Parse(origin)
	if err != nil {
		tb.Fatal(err)
	}
	handles := make([]string, n)
	var (
		wg    sync.WaitGroup
		first atomic.Pointer[error]
		next  atomic.Int64
	)
	for range runtime.GOMAXPROCS(0) + 2 {
		wg.Go(func() {
			for {
				i := int(next.Add(1)) - 1
				if i >= n || first.Load() != nil {
					return
				}
				handles[i] = fmt.Sprintf("%s%06d", prefix, i)
				if err := createV2Account(ctx, db, coffer.CanonicalOrigin(u), coffer.Handle(handles[i])); err != nil {
					first.CompareAndSwap(nil, &err)
					return
				}
			}
		})
	}
	wg.Wait()
	if err := first.Load(); err != nil {
		tb.Fatal(*err)
	}
	return handles
}

func createV2Account(ctx context.Context, db *store.DB, origin string, handle coffer.Handle) error {
	account := coffer.NewAccountID()
	seed := make([]byte, coffer.DeviceSeedSize)
	rand.Read(seed)
	sk, dk, err := coffer.DeviceKeysFromSeed(seed)
	if err != nil {
		return err
	}
	uk, err := userkey.Generate()
	if err != nil {
		return err
	}
	usk, err := userkey.HybridSigningKey(uk)
	if err != nil {
		return err
	}
	rk := coffer.NewRecoveryKey()
	dev := coffer.NewDeviceID()
	dw, err := userkey.Seal(dk.PublicKey().Bytes(), account, 1, userkey.Recipient{Device: dev}, uk)
	if err != nil {
		return err
	}
	rw, err := userkey.Seal(rk.EncryptionKey().PublicKey().Bytes(), account, 1, userkey.RecoveryRecipient, uk)
	if err != nil {
		return err
	}
	l := &coffer.AccountLink{Account: account, Seq: 1, Time: time.Now().UnixMilli(), Kind: coffer.LinkGenesis,
		AuthorKind: coffer.AuthorDevice, AuthorDevice: dev, Origin: origin, Handle: handle,
		Device:  coffer.DeviceKeys{ID: dev, Name: "desk", SigningKey: sk.Public(), EncryptionKey: dk.PublicKey().Bytes()},
		UserKey: uk.PublicKey().Bytes(), UserSigningKey: usk.Public(),
		RecoveryCommitment: rk.Commitment(account), RecoveryEncryptionKey: rk.EncryptionKey().PublicKey().Bytes(),
		DeviceWraps:  []coffer.DeviceWrap{{Device: dev, Wrap: dw}},
		RecoveryWrap: rw}
	gl := coffer.SignLink(l, sk, nil)
	state, err := coffer.VerifyAccountChain(nil, []coffer.SignedLink{gl})
	if err != nil {
		return err
	}
	parsed, err := coffer.ParseAccountLink(gl.Body)
	if err != nil {
		return err
	}
	id := state.Identity()
	selfSig := coffer.Sign(usk.Ed25519PrivateKey(), coffer.LabelIdentity, id.Marshal())
	now := time.Now()
	a := &coffer.Account{ID: account, Identity: id, SelfSignature: selfSig, Created: now}
	return db.CreateChainAccount(ctx, a, &coffer.AccountLinkAppend{Link: gl, Parsed: parsed, State: state, Identity: &id, SelfSignature: selfSig, Received: now})
}
