package discoverysvc

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sync"
	"sync/atomic"
	"time"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/sessionpin/sessionpin/internal/backoff"
)

// leaseRenewer renews leases, one renewal per call, over LeaseKeepAlive
// streams that the whole process shares and keeps open.
//
// etcd's own KeepAliveOnce is not used because it opens and closes a gRPC
// stream for every renewal, and on a discovery service whose unchanged
// heartbeats make no other etcd call that costs several times the CPU of a
// renewal on a kept stream (BenchmarkLeaseRenewal, and the registry section
// of BENCHMARKS.md). Its KeepAlive keeps a stream but renews on its own
// schedule until cancelled, which would keep a dead server's lease alive,
// whereas here a lease is renewed only when its server heartbeats.
//
// The renewer holds no lease state, only the streams, so any replica of the
// discovery service still renews any server's lease. Leases are spread over
// renewStreams streams by id, because etcd answers a stream's requests one
// after another and one stream would make every renewal wait behind the
// previous one's round trip to the leader; one lease always uses the same
// stream, which keeps its answers in request order.
type leaseRenewer struct {
	client *clientv3.Client
	slots  [renewStreams]renewSlot
}

// renewStreams is how many keep-alive streams a renewer keeps open; it
// must match renewSlotOf.
const renewStreams = 8

// renewSlotOf spreads lease ids over the slots. etcd's ids are sequential
// with gaps (a grant uses two request ids), so the id modulo the slot count
// would leave slots unused; Fibonacci hashing mixes the low bits in.
func renewSlotOf(id clientv3.LeaseID) int {
	return int(uint64(id) * 0x9E3779B97F4A7C15 >> 61) // top 3 bits: 0..7
}

// stuckAfter is how long a renewal must have waited, with nothing at all
// received on its stream meanwhile, before its deadline closes the stream:
// a caller that arrives with almost no time left says nothing about it.
const stuckAfter = time.Second

// errRenewStreamStuck closes a stream on which a renewal timed out with
// nothing at all coming back: a half-dead connection is not reused.
var errRenewStreamStuck = errors.New("lease keep-alive stream answered nothing before the deadline")

// renew renews lease id once and returns the TTL etcd granted and the store
// revision the answering member was at, or rpctypes.ErrLeaseNotFound when
// the lease is gone. Like KeepAliveOnce, it
// retries on a new stream until ctx ends when a stream breaks, and returns
// any other error at once.
func (l *leaseRenewer) renew(ctx context.Context, id clientv3.LeaseID) (renewal, error) {
	slot := &l.slots[renewSlotOf(id)]
	for attempt := 0; ; attempt++ {
		if err := ctx.Err(); err != nil {
			return renewal{}, err
		}
		s, err := slot.stream(ctx, l)
		if err != nil {
			return renewal{}, err
		}
		r, err := s.renew(ctx, id)
		if err == nil || ctx.Err() != nil || !retryable(err) {
			return r, rpctypes.Error(err)
		}
		// The stream broke (etcd restarted, lost its leader, expired our
		// auth token): a short pause, so that a member refusing every
		// stream is not hammered, then a new stream.
		if !backoff.Sleep(ctx, backoff.Jitter(time.Duration(min(attempt+1, 10))*20*time.Millisecond)) {
			return renewal{}, fmt.Errorf("%w (last stream error: %w)", ctx.Err(), err)
		}
	}
}

// retryable reports whether a renewal that failed with err may succeed on
// a new stream. As in clientv3, Unavailable and Internal are transient;
// Unauthenticated and an old auth revision are too, because a new stream
// authenticates afresh. Anything else (PermissionDenied, a lease not
// found, the caller's own deadline) is the answer.
func retryable(err error) bool {
	switch {
	case errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded),
		errors.Is(err, rpctypes.ErrLeaseNotFound):
		return false
	case errors.Is(err, errRenewStreamStuck), errors.Is(err, io.EOF),
		errors.Is(rpctypes.Error(err), rpctypes.ErrAuthOldRevision):
		return true
	}
	switch status.Code(err) {
	case codes.Unavailable, codes.Internal, codes.Unauthenticated:
		return true
	}
	return false
}

// renewSlot holds one of the renewer's streams.
type renewSlot struct {
	mu      sync.Mutex
	cur     *renewStream  // nil until first used; replaced once it fails
	opening chan struct{} // closed when the open under way ends; nil if none
}

// stream returns the slot's live stream, opening one when there is none.
// One caller opens while the others wait, each until its own deadline: a
// stream that breaks under hundreds of renewals is replaced once, not once
// per renewal (each open also authenticates when etcd auth is on).
func (sl *renewSlot) stream(ctx context.Context, l *leaseRenewer) (*renewStream, error) {
	for {
		sl.mu.Lock()
		if s := sl.cur; s != nil && s.alive() {
			sl.mu.Unlock()
			return s, nil
		}
		if wait := sl.opening; wait != nil {
			sl.mu.Unlock()
			select {
			case <-wait:
				continue
			case <-ctx.Done():
				return nil, ctx.Err()
			}
		}
		done := make(chan struct{})
		sl.opening = done
		sl.mu.Unlock()

		s, err := openRenewStream(ctx, l.client)
		sl.mu.Lock()
		sl.opening = nil
		if err == nil {
			sl.cur = s
		}
		sl.mu.Unlock()
		close(done)
		return s, err
	}
}

// renewStream is one LeaseKeepAlive stream and the renewals waiting on it.
type renewStream struct {
	stream pb.Lease_LeaseKeepAliveClient
	cancel context.CancelFunc
	// received counts responses, to tell a slow answer from a dead stream.
	received atomic.Uint64

	// sending is a one-slot semaphore ordering queueing and sending, so
	// that the responses for one lease, which etcd sends in request order,
	// meet their waiters in that order (gRPC also allows one sender at a
	// time). A channel, so that a caller stops waiting at its deadline.
	sending chan struct{}

	mu      sync.Mutex
	waiting map[int64][]chan renewal // by lease: FIFO of answer channels, closed on failure
	err     error                    // why the stream ended; nil while it is live
}

// openRenewStream opens a stream that lives as long as the client, giving
// up when ctx ends before etcd is reachable.
func openRenewStream(ctx context.Context, client *clientv3.Client) (*renewStream, error) {
	// WithRequireLeader makes a member that loses its leader end the
	// stream instead of holding renewals it cannot grant.
	sctx, cancel := context.WithCancel(clientv3.WithRequireLeader(client.Ctx()))
	stop := context.AfterFunc(ctx, cancel)
	st, err := pb.NewLeaseClient(client.ActiveConnection()).LeaseKeepAlive(sctx, grpc.WaitForReady(true))
	if !stop() {
		cancel()
		return nil, fmt.Errorf("open lease keep-alive stream: %w", ctx.Err())
	}
	if err != nil {
		cancel()
		return nil, fmt.Errorf("open lease keep-alive stream: %w", clientv3.ContextError(ctx, err))
	}
	s := &renewStream{
		stream:  st,
		cancel:  cancel,
		sending: make(chan struct{}, 1),
		waiting: map[int64][]chan renewal{},
	}
	go s.receive()
	return s, nil
}

func (s *renewStream) alive() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.err == nil
}

// renewal is etcd's answer to one keep-alive.
type renewal struct {
	// TTL is the lease's TTL in seconds; 0 or less when the lease is gone.
	TTL int64
	// Revision is the store revision of the member that answered, when it
	// answered: no key changed between it and the renewal.
	Revision int64
}

// renew sends one keep-alive for id and waits for its answer.
func (s *renewStream) renew(ctx context.Context, id clientv3.LeaseID) (renewal, error) {
	select {
	case s.sending <- struct{}{}:
	case <-ctx.Done():
		return renewal{}, ctx.Err()
	}
	ch := make(chan renewal, 1)
	s.mu.Lock()
	err := s.err
	if err == nil {
		err = ctx.Err() // gone already: renew nothing, as KeepAliveOnce would not
	}
	if err != nil {
		s.mu.Unlock()
		<-s.sending
		return renewal{}, err
	}
	s.waiting[int64(id)] = append(s.waiting[int64(id)], ch)
	s.mu.Unlock()
	before := s.received.Load()
	// Send blocks while gRPC's flow-control window is full, and only the
	// stream's end releases it: at the caller's deadline, end the stream.
	stop := context.AfterFunc(ctx, func() {
		if errors.Is(ctx.Err(), context.DeadlineExceeded) {
			s.fail(errRenewStreamStuck)
		}
	})
	err = s.stream.Send(&pb.LeaseKeepAliveRequest{ID: int64(id)})
	stop()
	sentAt := time.Now()
	<-s.sending
	if err != nil && !errors.Is(err, io.EOF) {
		// io.EOF means the server ended the stream, and receive reports
		// why; any other error ends it here.
		s.fail(fmt.Errorf("send lease keep-alive: %w", err))
	}
	select {
	case r, ok := <-ch:
		if !ok {
			return renewal{}, s.failure()
		}
		if r.TTL <= 0 {
			return renewal{}, rpctypes.ErrLeaseNotFound
		}
		return r, nil
	case <-ctx.Done():
		// A caller that went away (Canceled) says nothing about the
		// stream; a deadline after a long wait with no answer at all on
		// the stream since our request does.
		if errors.Is(ctx.Err(), context.DeadlineExceeded) && s.received.Load() == before && time.Since(sentAt) >= stuckAfter {
			s.fail(errRenewStreamStuck)
		}
		return renewal{}, ctx.Err()
	}
}

// receive hands each response to the oldest renewal waiting for its lease,
// until the stream ends.
func (s *renewStream) receive() {
	for {
		resp, err := s.stream.Recv()
		if err != nil {
			s.fail(fmt.Errorf("lease keep-alive stream: %w", err))
			return
		}
		s.received.Add(1)
		s.mu.Lock()
		if q := s.waiting[resp.ID]; len(q) > 0 {
			r := renewal{TTL: resp.TTL}
			if resp.Header != nil {
				r.Revision = resp.Header.Revision
			}
			q[0] <- r
			if len(q) == 1 {
				delete(s.waiting, resp.ID)
			} else {
				s.waiting[resp.ID] = q[1:]
			}
		}
		s.mu.Unlock()
	}
}

// fail ends the stream with err and releases every renewal waiting on it.
func (s *renewStream) fail(err error) {
	s.mu.Lock()
	if s.err == nil {
		s.err = err
		for _, q := range s.waiting {
			for _, ch := range q {
				close(ch)
			}
		}
		s.waiting = nil
	}
	s.mu.Unlock()
	s.cancel()
}

func (s *renewStream) failure() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.err
}
