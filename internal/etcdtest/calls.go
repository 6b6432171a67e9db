package etcdtest

import (
	"context"
	"strings"
	"sync"
	"testing"

	clientv3 "go.etcd.io/etcd/client/v3"
	"google.golang.org/grpc"
)

// Calls counts the gRPC calls one client makes to etcd, by method, so that
// a test can hold production code to what it asks of etcd (no read on a
// lease-only heartbeat, one stream per slot) without that code keeping
// counters of its own. A method is named by the last part of its gRPC
// name: "Range", "Txn", "Put", "LeaseKeepAlive". Every attempt counts: the
// etcd client's own retries sit outside these interceptors.
type Calls struct {
	mu      sync.Mutex
	ok      map[string]int64
	failed  map[string]int64
	streams map[string]int64
}

// NewCountingClient is NewClient with its calls counted. The counts start
// at zero after NewClient's own health probe.
func NewCountingClient(t testing.TB, members ...*Member) (*clientv3.Client, *Calls) {
	t.Helper()
	calls := &Calls{}
	c := newClient(t, "etcd client", clientv3.Config{
		Endpoints: Endpoints(members),
		DialOptions: []grpc.DialOption{
			grpc.WithChainUnaryInterceptor(calls.unary),
			grpc.WithChainStreamInterceptor(calls.stream),
		},
	})
	calls.reset()
	return c, calls
}

// OK is how many unary calls of method succeeded.
func (c *Calls) OK(method string) int64 { return c.get(&c.ok, method) }

// Failed is how many unary calls of method returned an error.
func (c *Calls) Failed(method string) int64 { return c.get(&c.failed, method) }

// Streams is how many streams of method were opened.
func (c *Calls) Streams(method string) int64 { return c.get(&c.streams, method) }

func (c *Calls) get(m *map[string]int64, method string) int64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	return (*m)[method]
}

func (c *Calls) add(m *map[string]int64, fullMethod string) {
	method := fullMethod[strings.LastIndexByte(fullMethod, '/')+1:]
	c.mu.Lock()
	defer c.mu.Unlock()
	if *m == nil {
		*m = map[string]int64{}
	}
	(*m)[method]++
}

func (c *Calls) reset() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.ok, c.failed, c.streams = nil, nil, nil
}

func (c *Calls) unary(ctx context.Context, method string, req, reply any, cc *grpc.ClientConn, invoker grpc.UnaryInvoker, opts ...grpc.CallOption) error {
	err := invoker(ctx, method, req, reply, cc, opts...)
	if err != nil {
		c.add(&c.failed, method)
	} else {
		c.add(&c.ok, method)
	}
	return err
}

func (c *Calls) stream(ctx context.Context, desc *grpc.StreamDesc, cc *grpc.ClientConn, method string, streamer grpc.Streamer, opts ...grpc.CallOption) (grpc.ClientStream, error) {
	s, err := streamer(ctx, desc, cc, method, opts...)
	if err == nil {
		c.add(&c.streams, method)
	}
	return s, err
}
