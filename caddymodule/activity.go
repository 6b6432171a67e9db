package caddymodule

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"os"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"

	"github.com/sessionpin/sessionpin/caddymodule/placement"
	"github.com/sessionpin/sessionpin/discoverysvc/schema"
)

// Defaults of the edge's activity publishing.
const (
	DefaultActivityInterval = 5 * time.Second
	// MinActivityInterval keeps a misconfigured edge from writing to etcd
	// many times a second.
	MinActivityInterval = 100 * time.Millisecond
)

// activityIdle is how long a server the edge stopped seeing pinned
// requests to stays in its activity value: long enough for a drain status
// to know when it was last used, short enough that the value does not grow
// with every server that ever existed.
const activityIdle = 10 * time.Minute

// activityWindow is the span of the "minute" count of each server.
const activityWindow = time.Minute

// serverActivity counts the pinned requests this edge proxied to one
// server. The request path only adds to pinned, reached through the
// server's snapshot target: one atomic add, no lookup, no allocation. The
// other fields belong to the publisher goroutine.
type serverActivity struct {
	pinned atomic.Uint64

	// orphan marks a counter whose server left the snapshot and went idle;
	// attach clears it, so a server that comes back keeps its counter.
	orphan atomic.Bool

	// placements follows the clients this edge placed on the server and
	// the server's load reports, for placement's estimate of its load. It
	// lives here because this is what outlives the server's targets.
	placements placement.Placements

	seen   uint64   // pinned at the previous tick
	window []uint64 // per-interval counts of the last minute, a ring
	next   int      // next slot of window
	minute uint64   // sum of window
	last   time.Time
}

// activityTracker hands out one counter per server id, so the count of a
// server survives the snapshot rebuilding its target on every record
// change.
type activityTracker struct {
	mu       sync.Mutex
	counters map[string]*serverActivity
}

func newActivityTracker() *activityTracker {
	return &activityTracker{counters: map[string]*serverActivity{}}
}

// attach is the watcher's Attach hook: attachTarget, with the server's
// counter from the tracker.
func (tr *activityTracker) attach(srv schema.Server) any {
	t, _ := attachTarget(srv).(*target)
	if t == nil {
		return nil
	}
	tr.mu.Lock()
	c := tr.counters[srv.ID]
	if c == nil {
		c = new(serverActivity)
		tr.counters[srv.ID] = c
	}
	tr.mu.Unlock()
	c.orphan.Store(false)
	t.activity = c
	t.received(srv, time.Now())
	return t
}

// counted is one counter with its server id, as the publisher walks them.
type counted struct {
	id string
	c  *serverActivity
}

func (tr *activityTracker) all() []counted {
	tr.mu.Lock()
	defer tr.mu.Unlock()
	out := make([]counted, 0, len(tr.counters))
	for id, c := range tr.counters {
		out = append(out, counted{id, c})
	}
	return out
}

// forget drops the counters that were orphans for a whole tick. A counter
// attached again in between was un-marked by attach and stays.
func (tr *activityTracker) forget(ids []counted) {
	tr.mu.Lock()
	defer tr.mu.Unlock()
	for _, x := range ids {
		if tr.counters[x.id] == x.c && x.c.orphan.Load() {
			delete(tr.counters, x.id)
		}
	}
}

// processEdgeID is the default edge_id: the host name and a random suffix
// drawn once per process, so a restarted edge is a new edge (its old key
// ends with its old lease) while a config reload keeps the same one.
var processEdgeID = sync.OnceValue(func() string {
	host, _ := os.Hostname()
	var b strings.Builder
	for _, r := range host {
		if r < 128 && (r == '.' || r == '-' || r == '_' || r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9') && b.Len() < 48 {
			b.WriteRune(r)
		}
	}
	if b.Len() == 0 {
		b.WriteString("edge")
	}
	suffix := make([]byte, 4)
	_, _ = rand.Read(suffix)
	return b.String() + "-" + hex.EncodeToString(suffix)
})

// activityPublisher writes this edge's pinned activity to
// <prefix>edges/<edge_id> every interval, under a lease of three intervals
// so that a dead edge's report disappears on its own. It writes only when
// the content changed; otherwise it only renews the lease.
type activityPublisher struct {
	client   *clientv3.Client
	key      string
	edge     string
	region   func() string
	interval time.Duration
	tracker  *activityTracker
	alive    func(id string) bool // whether the server is in the snapshot
	log      *zap.Logger

	lease   clientv3.LeaseID
	written []byte // the servers object and region last written
	failing bool   // etcd failing: logged once per outage
	slots   int
}

func (p *activityPublisher) run(ctx context.Context) {
	p.slots = max(1, int((activityWindow+p.interval-1)/p.interval))
	tick := time.NewTicker(p.interval)
	defer tick.Stop()
	defer p.revoke()
	for {
		select {
		case <-ctx.Done():
			return
		case now := <-tick.C:
			p.publish(ctx, now)
		}
	}
}

// publish counts one interval and writes or renews.
func (p *activityPublisher) publish(ctx context.Context, now time.Time) {
	servers := p.tally(now)
	region := p.region()
	content := append(schema.AppendServers(nil, servers), region...)
	ctx, cancel := context.WithTimeout(ctx, p.interval)
	defer cancel()
	err := p.renew(ctx)
	if err == nil && !bytes.Equal(content, p.written) {
		err = p.write(ctx, now, region, servers, content)
	}
	p.noteResult(err)
}

// tally folds the counters' growth since the last tick into each server's
// window and returns the servers to report.
func (p *activityPublisher) tally(now time.Time) map[string]schema.ServerActivity {
	out := map[string]schema.ServerActivity{}
	var orphans []counted
	for _, x := range p.tracker.all() {
		c := x.c
		total := c.pinned.Load()
		delta := total - c.seen
		c.seen = total
		if delta > 0 && c.window == nil {
			c.window = make([]uint64, p.slots)
		}
		if c.window != nil {
			c.minute += delta - c.window[c.next]
			c.window[c.next] = delta
			c.next = (c.next + 1) % len(c.window)
		}
		if delta > 0 {
			// The end of the interval the requests fell in: never earlier
			// than the last of them, so a drain never looks quiet too soon.
			c.last = now
		}
		if !c.last.IsZero() && now.Sub(c.last) < activityIdle {
			out[x.id] = schema.ServerActivity{Pinned: delta, Minute: c.minute, Last: c.last}
			continue
		}
		c.window, c.minute, c.last = nil, 0, time.Time{}
		if p.alive(x.id) {
			continue
		}
		if c.orphan.Load() {
			orphans = append(orphans, x)
		} else {
			c.orphan.Store(true)
		}
	}
	if len(orphans) > 0 {
		p.tracker.forget(orphans)
	}
	return out
}

// renew keeps the lease alive, granting a new one when there is none or it
// was lost (etcd unreachable for longer than its TTL).
func (p *activityPublisher) renew(ctx context.Context) error {
	if p.lease != clientv3.NoLease {
		_, err := p.client.KeepAliveOnce(ctx, p.lease)
		if err == nil {
			return nil
		}
		if !errors.Is(err, rpctypes.ErrLeaseNotFound) {
			return err
		}
		p.lease, p.written = clientv3.NoLease, nil
	}
	ttl := int64((3*p.interval + time.Second - 1) / time.Second)
	g, err := p.client.Grant(ctx, ttl)
	if err != nil {
		return err
	}
	p.lease, p.written = g.ID, nil
	return nil
}

func (p *activityPublisher) write(ctx context.Context, now time.Time, region string, servers map[string]schema.ServerActivity, content []byte) error {
	serversJSON := content[:len(content)-len(region)]
	value := schema.AppendActivity(nil, p.edge, region, p.interval, now, serversJSON)
	if len(value) > schema.MaxActivityLen {
		value = p.trim(now, region, servers)
	}
	if _, err := p.client.Put(ctx, p.key, string(value), clientv3.WithLease(p.lease)); err != nil {
		return err
	}
	p.written = content
	return nil
}

// trim drops the servers seen longest ago until the value fits under
// etcd's request limit: the busiest servers are the ones a drain waits on.
func (p *activityPublisher) trim(now time.Time, region string, servers map[string]schema.ServerActivity) []byte {
	ids := make([]string, 0, len(servers))
	for id := range servers {
		ids = append(ids, id)
	}
	slices.SortFunc(ids, func(a, b string) int { return servers[b].Last.Compare(servers[a].Last) })
	budget := schema.MaxActivityLen - len(schema.AppendActivity(nil, p.edge, region, p.interval, now, []byte("{}")))
	kept := map[string]schema.ServerActivity{}
	var scratch []byte
	for _, id := range ids {
		scratch = schema.AppendServer(scratch[:0], id, servers[id])
		if budget -= len(scratch) + 1; budget < 0 {
			break
		}
		kept[id] = servers[id]
	}
	p.log.Warn("activity value over etcd's request limit; reporting only the most recently used servers",
		zap.Int("servers", len(servers)), zap.Int("reported", len(kept)))
	return schema.AppendActivity(nil, p.edge, region, p.interval, now, schema.AppendServers(nil, kept))
}

func (p *activityPublisher) noteResult(err error) {
	switch {
	case err != nil && !p.failing:
		p.failing = true
		p.log.Warn("publishing pinned activity failed; retrying every interval", zap.String("key", p.key), zap.Error(err))
	case err == nil && p.failing:
		p.failing = false
		p.log.Info("publishing pinned activity again", zap.String("key", p.key))
	}
}

// revoke ends the lease at shutdown, so the edge's report leaves at once
// rather than after three intervals.
func (p *activityPublisher) revoke() {
	if p.lease == clientv3.NoLease {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	_, _ = p.client.Revoke(ctx, p.lease)
}
