package e2e_test

import (
	"context"
	"crypto/hpke"
	"fmt"
	"testing"
	"time"

	"github.com/cofferhq/coffer"
	"github.com/cofferhq/coffer/clientlib"
	"github.com/cofferhq/coffer/internal/groupkey"
)

// BenchmarkRevokeDevice measures revoking a device of a suite v2 account
// that is in G groups of M members each: the revoke-device link (a new user
// key, wrapped to the remaining device and the recovery key) and then the
// account's self-update in every group (an update-key and a rotation, the
// new epoch key sealed to every member). Beside it, in the same run:
//
//   - limit=raw-seal-loop: the G×M HPKE seals of the self-updates, in one
//     goroutine with keys already parsed;
//   - suite-v1=rotate-every-group: what an account without devices does to
//     get the same protection, a rotation of each of the G groups.
//
// cofferd runs as its own process. Each iteration links a fresh device
// (outside the timer) and revokes it.
func BenchmarkRevokeDevice(b *testing.B) {
	groups, members := 100, 100
	if testing.Short() {
		// .ci/run runs every benchmark once with -short.
		groups, members = 5, 10
	}
	b.Run(fmt.Sprintf("groups=%d/members=%d", groups, members), func(b *testing.B) {
		ctx := context.Background()
		srv := startBenchProcess(b, "-account-rate-limit", "10000000", "-log-rate-limit", "10000000")
		opts := &clientlib.Options{TrustOnFirstUse: true}
		phone := MustNewClientWith(b, srv.URL(), NewCanaryKeyStore(), opts)
		if _, err := phone.CreateAccount(ctx, "alice", "phone"); err != nil {
			b.Fatal(err)
		}
		handles := mustBulkAccounts(b, srv, "m", members-1)
		gs := make([]coffer.GroupID, groups)
		for i := range gs {
			gs[i] = mustGroup(b, phone, fmt.Sprintf("g%d", i), nil)
			if err := phone.AddMembers(ctx, gs[i], handles, coffer.RoleReader); err != nil {
				b.Fatal(err)
			}
		}
		// The limit: the self-updates' seals, keys parsed.
		ms, err := phone.Members(ctx, gs[0])
		if err != nil {
			b.Fatal(err)
		}
		pks := make([]hpke.PublicKey, 0, len(ms))
		for _, m := range ms {
			pk, err := coffer.KEM().NewPublicKey(m.EncryptionKey)
			if err != nil {
				b.Fatal(err)
			}
			pks = append(pks, pk)
		}
		k := groupkey.NewEpochKey()
		var limit time.Duration
		b.Run("limit=raw-seal-loop-1-goroutine", func(b *testing.B) {
			for range b.N {
				for range groups {
					for _, pk := range pks {
						if _, err := hpke.Seal(pk, hpke.HKDFSHA256(), hpke.AES256GCM(), []byte("info"), k[:]); err != nil {
							b.Fatal(err)
						}
					}
				}
			}
			limit = b.Elapsed() / time.Duration(b.N)
		})
		var v1 time.Duration
		b.Run("suite-v1=rotate-every-group", func(b *testing.B) {
			for range b.N {
				for _, g := range gs {
					if err := phone.Rotate(ctx, g); err != nil {
						b.Fatal(err)
					}
				}
			}
			v1 = b.Elapsed() / time.Duration(b.N)
		})
		n := 0
		b.Run("revoke", func(b *testing.B) {
			for range b.N {
				b.StopTimer()
				n++
				name := fmt.Sprintf("laptop-%d", n)
				mustLink(b, srv.URL(), phone, "alice", name)
				b.StartTimer()
				if err := phone.RevokeDevice(ctx, name); err != nil {
					b.Fatal(err)
				}
			}
			per := b.Elapsed() / time.Duration(b.N)
			if limit > 0 {
				b.ReportMetric(float64(limit.Microseconds())/1000, "limit-ms")
				b.ReportMetric(float64(per)/float64(limit), "x-limit")
			}
			if v1 > 0 {
				b.ReportMetric(float64(per)/float64(v1), "x-suite-v1-rotations")
			}
		})
	})
}
