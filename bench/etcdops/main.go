// Command etcdops measures what the registry's etcd calls cost, per
// operation, against an embedded etcd on loopback: the read and the lease
// renewal every heartbeat makes (Registry.Heartbeat does a linearizable Get
// and a KeepAliveOnce), and the alternatives an optimisation could use (a
// serializable read, a renewal on a long-lived LeaseKeepAlive stream). CPU
// is this whole process's (client and server), from /proc.
//
//	go run ./bench/etcdops [-ops 20000] [-conns 32]
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"sync"
	"sync/atomic"
	"time"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/sessionpin/sessionpin/bench/internal/benchenv"
)

func main() {
	ops := flag.Int("ops", 20000, "operations per measurement")
	conns := flag.Int("conns", 32, "operations in flight")
	flag.Parse()
	e, err := benchenv.StartEtcd()
	if err != nil {
		fmt.Fprintln(os.Stderr, "etcdops:", err)
		os.Exit(1)
	}
	defer e.Close()
	ctx := context.Background()
	cli := e.Client
	const nLeases = 1000
	leases := make([]clientv3.LeaseID, nLeases)
	for i := range leases {
		g, err := cli.Grant(ctx, 600)
		if err != nil {
			fmt.Fprintln(os.Stderr, "etcdops:", err)
			os.Exit(1)
		}
		leases[i] = g.ID
		if _, err := cli.Put(ctx, key(i), `{"id":"x","region":"r","url":"http://a:1","load":0.1}`, clientv3.WithLease(g.ID)); err != nil {
			fmt.Fprintln(os.Stderr, "etcdops:", err)
			os.Exit(1)
		}
	}
	N, W := *ops, *conns
	// run measures op over N calls with W in flight (worker w, call i).
	run := func(name string, op func(w int, i int) error) {
		var next atomic.Int64
		c0, _ := benchenv.ProcessCPU(os.Getpid())
		t0 := time.Now()
		var wg sync.WaitGroup
		for w := range W {
			wg.Go(func() {
				for {
					i := int(next.Add(1))
					if i > N {
						return
					}
					if err := op(w, i); err != nil {
						fmt.Fprintln(os.Stderr, "etcdops:", name, err)
						os.Exit(1)
					}
				}
			})
		}
		wg.Wait()
		el := time.Since(t0)
		c1, _ := benchenv.ProcessCPU(os.Getpid())
		fmt.Printf("%-36s %7.0f ops/s  %6.1f µs CPU/op\n", name, float64(N)/el.Seconds(), float64((c1-c0).Microseconds())/float64(N))
	}
	// Twice: the first pass warms connections and caches.
	for pass := range 2 {
		fmt.Printf("pass %d\n", pass+1)
		run("Get (linearizable)", func(_, i int) error {
			_, err := cli.Get(ctx, key(i%nLeases))
			return err
		})
		run("Get (serializable)", func(_, i int) error {
			_, err := cli.Get(ctx, key(i%nLeases), clientv3.WithSerializable())
			return err
		})
		run("KeepAliveOnce", func(_, i int) error {
			_, err := cli.KeepAliveOnce(ctx, leases[i%nLeases])
			return err
		})
		lc := pb.NewLeaseClient(cli.ActiveConnection())
		streams := make([]pb.Lease_LeaseKeepAliveClient, W)
		for w := range streams {
			s, err := lc.LeaseKeepAlive(ctx)
			if err != nil {
				fmt.Fprintln(os.Stderr, "etcdops:", err)
				os.Exit(1)
			}
			streams[w] = s
		}
		run("keep-alive on a long-lived stream", func(w, i int) error {
			if err := streams[w].Send(&pb.LeaseKeepAliveRequest{ID: int64(leases[i%nLeases])}); err != nil {
				return err
			}
			_, err := streams[w].Recv()
			return err
		})
		for _, s := range streams {
			s.CloseSend()
		}
		run("Get + KeepAliveOnce (a heartbeat)", func(_, i int) error {
			if _, err := cli.Get(ctx, key(i%nLeases)); err != nil {
				return err
			}
			_, err := cli.KeepAliveOnce(ctx, leases[i%nLeases])
			return err
		})
	}
}

func key(i int) string { return fmt.Sprintf("/k/%d", i) }
