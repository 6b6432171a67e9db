package chaos

import (
	"bytes"
	"context"
	"fmt"
	"runtime/pprof"
	"sort"
	"strings"
	"sync"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/sessionpin/sessionpin/discoverysvc/schema"
)

// timeline records registry changes as the test saw them in etcd, so a
// failure can be read against what the registry did at the time.
type timeline struct {
	start time.Time
	mu    sync.Mutex
	lines []string
}

// watchRegistry records every server added, changed or removed until ctx
// ends. A watch that ends (its member stopped, its leader lost) is resumed
// from the next revision, so the timeline has no gap.
func watchRegistry(ctx context.Context, c *clientv3.Client, start time.Time) *timeline {
	tl := &timeline{start: start}
	prefix := schema.ServersPrefix(schema.DefaultPrefix)
	go func() {
		var next int64
		for ctx.Err() == nil {
			opts := []clientv3.OpOption{clientv3.WithPrefix()}
			if next > 0 {
				opts = append(opts, clientv3.WithRev(next))
			}
			for resp := range c.Watch(ctx, prefix, opts...) {
				if resp.CompactRevision > 0 {
					next = resp.CompactRevision
					tl.add("(history compacted)")
				}
				for _, ev := range resp.Events {
					id := strings.TrimPrefix(string(ev.Kv.Key), prefix)
					what := "delete"
					if ev.Type == clientv3.EventTypePut {
						what = "put " + string(ev.Kv.Value)
					}
					tl.add(fmt.Sprintf("%s %s", id, what))
					next = ev.Kv.ModRevision + 1
				}
			}
			time.Sleep(100 * time.Millisecond) // before resuming a watch that ended
		}
	}()
	return tl
}

// restart sets the time the timeline counts from.
func (tl *timeline) restart(start time.Time) {
	tl.mu.Lock()
	defer tl.mu.Unlock()
	tl.start = start
}

func (tl *timeline) add(s string) {
	tl.mu.Lock()
	defer tl.mu.Unlock()
	tl.lines = append(tl.lines, fmt.Sprintf("%6.1fs %s", time.Since(tl.start).Seconds(), s))
}

// drainingPuts counts the writes that marked server id draining.
func (tl *timeline) drainingPuts(id string) int {
	tl.mu.Lock()
	defer tl.mu.Unlock()
	n := 0
	for _, l := range tl.lines {
		if strings.Contains(l, "s "+id+" put ") && strings.Contains(l, `"draining":true`) {
			n++
		}
	}
	return n
}

// deletes is the part of the timeline that removed servers.
func (tl *timeline) deletes() []string {
	tl.mu.Lock()
	defer tl.mu.Unlock()
	var out []string
	for _, l := range tl.lines {
		if strings.HasSuffix(l, " delete") {
			out = append(out, l)
		}
	}
	return out
}

// goroutineGroups counts this process's goroutines by their stack.
func goroutineGroups() map[string]int {
	var buf bytes.Buffer
	_ = pprof.Lookup("goroutine").WriteTo(&buf, 1)
	groups := map[string]int{}
	for _, g := range strings.Split(buf.String(), "\n\n")[1:] {
		var n int
		if _, err := fmt.Sscanf(g, "%d @", &n); err != nil {
			continue
		}
		stack := g[strings.IndexByte(g, '\n')+1:]
		groups[stack] += n
	}
	return groups
}

// grown lists the stacks that have more goroutines now than in before.
func grown(before, now map[string]int) string {
	var out []string
	for stack, n := range now {
		if d := n - before[stack]; d > 0 {
			out = append(out, fmt.Sprintf("+%d\n%s", d, stack))
		}
	}
	sort.Strings(out)
	return strings.Join(out, "\n")
}

// ownGoroutines counts this process's goroutines that run the test's own
// code (clients, watchers), leaving out the embedded etcd members, whose
// internals differ between a fresh member and a restarted one, and the
// goroutine asking.
func ownGoroutines() int {
	n := 0
	for stack, c := range goroutineGroups() {
		if strings.Contains(stack, "sessionpin/chaos.") && !strings.Contains(stack, "chaos.goroutineGroups") {
			n += c
		}
	}
	return n
}
