package discoverysvc

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/sessionpin/sessionpin/internal/etcdtest"
	"github.com/sessionpin/sessionpin/internal/poll"
)

// grantLeases grants n leases of ttl seconds.
func grantLeases(t *testing.T, c *clientv3.Client, n int, ttl int64) []clientv3.LeaseID {
	t.Helper()
	ids := make([]clientv3.LeaseID, n)
	for i := range ids {
		g, err := c.Grant(testContext(t), ttl)
		if err != nil {
			t.Fatalf("grant: %v", err)
		}
		ids[i] = g.ID
	}
	return ids
}

// remainingTTL is the lease's remaining TTL as etcd reports it.
func remainingTTL(t *testing.T, c *clientv3.Client, id clientv3.LeaseID) int64 {
	t.Helper()
	resp, err := c.TimeToLive(testContext(t), id)
	if err != nil {
		t.Fatalf("time to live: %v", err)
	}
	return resp.TTL
}

// Concurrent renewals of many leases, several per lease, share the
// renewer's few streams and each gets its own lease's answer; a revoked lease among them
// answers ErrLeaseNotFound without disturbing the others.
func TestLeaseRenewerConcurrentRenewalsShareStreams(t *testing.T) {
	m := etcdtest.Start(t)
	c := etcdtest.NewClient(t, m)
	short := grantLeases(t, c, 20, 5)
	long := grantLeases(t, c, 20, 60)
	// Enough long leases that every stream of the renewer is used.
	for covered := 0; covered != 1<<renewStreams-1; {
		covered = 0
		for _, id := range append(short, long...) {
			covered |= 1 << renewSlotOf(id)
		}
		if covered != 1<<renewStreams-1 {
			long = append(long, grantLeases(t, c, 1, 60)...)
		}
	}
	gone := grantLeases(t, c, 1, 60)[0]
	if _, err := c.Revoke(testContext(t), gone); err != nil {
		t.Fatal(err)
	}

	l := &leaseRenewer{client: c}
	var wg sync.WaitGroup
	errs := make(chan error, 200)
	for range 3 {
		for i := range short {
			wg.Add(3)
			go func() {
				defer wg.Done()
				if r, err := l.renew(testContext(t), short[i]); err != nil || r.TTL != 5 {
					errs <- errors.Join(errors.New("short lease"), err, errTTL(r.TTL, 5))
				}
			}()
			go func() {
				defer wg.Done()
				if r, err := l.renew(testContext(t), long[i]); err != nil || r.TTL != 60 {
					errs <- errors.Join(errors.New("long lease"), err, errTTL(r.TTL, 60))
				}
			}()
			go func() {
				defer wg.Done()
				if _, err := l.renew(testContext(t), gone); !errors.Is(err, rpctypes.ErrLeaseNotFound) {
					errs <- errors.Join(errors.New("revoked lease: want ErrLeaseNotFound"), err)
				}
			}()
		}
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	var first [renewStreams]*renewStream
	for i := range l.slots {
		first[i] = l.slots[i].cur
	}
	for _, id := range append(short, long...) {
		if _, err := l.renew(testContext(t), id); err != nil {
			t.Fatal(err)
		}
	}
	for i := range l.slots {
		if s := l.slots[i].cur; s != first[i] || s == nil || !s.alive() {
			t.Errorf("stream %d was replaced although it was healthy, or never opened", i)
		}
	}
	// The renewal really extends the lease: once a short lease has run
	// down by more than two seconds, a renewal brings it back up. etcd
	// reports whole seconds rounded down, so a renewed 5 s lease reads 4,
	// and 3 leaves a second for this test to be slow.
	poll.True(t, 10*time.Second, "5 s lease down to 2 s", func() bool { return remainingTTL(t, c, short[0]) <= 2 })
	if _, err := l.renew(testContext(t), short[0]); err != nil {
		t.Fatal(err)
	}
	if got := remainingTTL(t, c, short[0]); got < 3 {
		t.Errorf("renewed 5 s lease has %d s left", got)
	}
}

// renewedLease starts etcd, grants a lease of ttl seconds and renews it
// once through a new renewer, whose slot for the lease then holds a stream.
func renewedLease(t *testing.T, ttl int64) (*etcdtest.Member, *leaseRenewer, clientv3.LeaseID, *renewSlot) {
	t.Helper()
	m := etcdtest.Start(t)
	c := etcdtest.NewClient(t, m)
	id := grantLeases(t, c, 1, ttl)[0]
	l := &leaseRenewer{client: c}
	if _, err := l.renew(testContext(t), id); err != nil {
		t.Fatal(err)
	}
	return m, l, id, &l.slots[renewSlotOf(id)]
}

func errTTL(got, want int64) error {
	if got == want {
		return nil
	}
	return fmt.Errorf("ttl %d, want %d", got, want)
}

// A caller that gives up (Canceled) leaves the shared stream to the others.
func TestLeaseRenewerCancelledCallerKeepsStream(t *testing.T) {
	_, l, id, slot := renewedLease(t, 30)
	s := slot.cur
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := l.renew(ctx, id); !errors.Is(err, context.Canceled) {
		t.Fatalf("renew with a cancelled context: %v, want context.Canceled", err)
	}
	if r, err := l.renew(testContext(t), id); err != nil || r.TTL != 30 {
		t.Fatalf("renew after a cancelled caller: ttl %d err %v", r.TTL, err)
	}
	if slot.cur != s || !s.alive() {
		t.Error("a cancelled caller closed the shared stream")
	}
}

// With etcd down a renewal fails at its deadline; once etcd is back, the
// renewer opens a new stream and renews again.
func TestLeaseRenewerSurvivesEtcdRestart(t *testing.T) {
	m, l, id, slot := renewedLease(t, 60)
	broken := slot.cur

	m.Stop()
	ctx, cancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
	_, err := l.renew(ctx, id)
	cancel()
	if err == nil {
		t.Fatal("renewal succeeded with etcd stopped")
	}
	if broken.alive() {
		t.Error("the stream to a stopped etcd still counts as alive")
	}

	m.Restart()
	poll.Until(t, 30*time.Second, "renewal after etcd restart", func() error {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		r, err := l.renew(ctx, id)
		if err != nil {
			return err
		}
		if r.TTL != 60 {
			return errTTL(r.TTL, 60)
		}
		return nil
	})
	if slot.cur == broken {
		t.Error("the renewer kept the broken stream")
	}
}

func TestRetryable(t *testing.T) {
	for _, c := range []struct {
		name string
		err  error
		want bool
	}{
		{"stream unavailable (member down, no leader)", status.Error(codes.Unavailable, "etcdserver: no leader"), true},
		{"wrapped unavailable", fmt.Errorf("lease keep-alive stream: %w", status.Error(codes.Unavailable, "x")), true},
		{"internal", status.Error(codes.Internal, "x"), true},
		{"expired auth token", status.Error(codes.Unauthenticated, "etcdserver: invalid auth token"), true},
		{"old auth revision", rpctypes.ErrGRPCAuthOldRevision, true},
		{"server ended the stream", io.EOF, true},
		{"stream stuck", errRenewStreamStuck, true},
		{"permission denied is an answer", rpctypes.ErrGRPCPermissionDenied, false},
		{"lease not found is an answer", rpctypes.ErrLeaseNotFound, false},
		{"caller's deadline", context.DeadlineExceeded, false},
		{"caller cancelled", fmt.Errorf("x: %w", context.Canceled), false},
		{"anything else", errors.New("boom"), false},
	} {
		if got := retryable(c.err); got != c.want {
			t.Errorf("%s: retryable(%v) = %v, want %v", c.name, c.err, got, c.want)
		}
	}
}

// When the streams break under many renewals in flight, each slot opens
// one new stream, not one per waiting renewal.
func TestLeaseRenewerReopensOncePerSlot(t *testing.T) {
	m := etcdtest.Start(t)
	c, calls := etcdtest.NewCountingClient(t, m)
	ids := grantLeases(t, c, 40, 60)
	l := &leaseRenewer{client: c}
	for _, id := range ids {
		if _, err := l.renew(testContext(t), id); err != nil {
			t.Fatal(err)
		}
	}
	opened := calls.Streams("LeaseKeepAlive")
	m.Stop()
	m.Restart()
	// 200 renewals at once against streams that all broke.
	var wg sync.WaitGroup
	var failed atomic.Int64
	for i := range 200 {
		wg.Go(func() {
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			if _, err := l.renew(ctx, ids[i%len(ids)]); err != nil {
				failed.Add(1)
			}
		})
	}
	wg.Wait()
	if n := failed.Load(); n > 0 {
		t.Fatalf("%d of 200 renewals failed after etcd came back", n)
	}
	// Each slot reopens at least once; a stream that dies again while the
	// member settles may cost another, but not one per renewal.
	if n := calls.Streams("LeaseKeepAlive") - opened; n < 1 || n > 4*renewStreams {
		t.Errorf("opened %d streams for 200 renewals over %d slots", n, renewStreams)
	}
}

// BenchmarkLeaseRenewal is one heartbeat's lease renewal, 32 in flight over
// 1,000 leases, through the renewer's kept streams and through the etcd
// client's KeepAliveOnce, which opens a stream per call. The process's CPU
// per renewal (client and the embedded etcd together) is reported as
// cpu-µs/op: on a busy discovery service CPU, not latency, is what the
// renewer saves.
func BenchmarkLeaseRenewal(b *testing.B) {
	m := etcdtest.Start(b)
	c := etcdtest.NewClient(b, m)
	ids := make([]clientv3.LeaseID, 1000)
	for i := range ids {
		g, err := c.Grant(context.Background(), 600)
		if err != nil {
			b.Fatal(err)
		}
		ids[i] = g.ID
	}
	l := &leaseRenewer{client: c}
	for name, renew := range map[string]func(context.Context, clientv3.LeaseID) error{
		"kept-streams": func(ctx context.Context, id clientv3.LeaseID) error {
			_, err := l.renew(ctx, id)
			return err
		},
		"KeepAliveOnce": func(ctx context.Context, id clientv3.LeaseID) error {
			_, err := c.KeepAliveOnce(ctx, id)
			return err
		},
	} {
		b.Run(name, func(b *testing.B) {
			var next atomic.Int64
			b.SetParallelism(16) // 32 in flight on 2 cores
			cpu0 := processCPU(b)
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) {
				ctx := context.Background()
				for pb.Next() {
					if err := renew(ctx, ids[next.Add(1)%int64(len(ids))]); err != nil {
						b.Error(err)
						return
					}
				}
			})
			b.StopTimer()
			b.ReportMetric(float64((processCPU(b)-cpu0).Microseconds())/float64(b.N), "cpu-µs/op")
		})
	}
}

// processCPU is the CPU time, user and system, this process has used.
func processCPU(tb testing.TB) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		tb.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
