package discoverysvc_test

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/sessionpin/sessionpin/discoverysvc"
	"github.com/sessionpin/sessionpin/discoverysvc/schema"
	"github.com/sessionpin/sessionpin/internal/etcdtest"
	"github.com/sessionpin/sessionpin/internal/metrictest"
	"github.com/sessionpin/sessionpin/internal/poll"
)

// sseEvent is one event read from GET /v1/events.
type sseEvent struct {
	name string
	data string
	id   string // the id field of this event, "" when it has none
	at   time.Time
}

func (e sseEvent) server(t *testing.T) map[string]any {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal([]byte(e.data), &m); err != nil {
		t.Fatalf("event %s: data %q: %v", e.name, e.data, err)
	}
	return m
}

// eventStream is a client of GET /v1/events.
type eventStream struct {
	resp   *http.Response
	events chan sseEvent
	done   chan struct{}
}

func openEvents(t *testing.T, url, lastID string) *eventStream {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, url+"/v1/events", nil)
	if lastID != "" {
		req.Header.Set("Last-Event-ID", lastID)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		t.Fatalf("GET /v1/events: %d %s", resp.StatusCode, b)
	}
	if ct := resp.Header.Get("Content-Type"); ct != "text/event-stream" {
		t.Fatalf("Content-Type %q", ct)
	}
	s := &eventStream{resp: resp, events: make(chan sseEvent, 10000), done: make(chan struct{})}
	go s.read()
	t.Cleanup(s.close)
	return s
}

func (s *eventStream) close() { s.resp.Body.Close() }

// read parses the stream as an EventSource does: fields until a blank line
// dispatch an event; a comment line starts with a colon.
func (s *eventStream) read() {
	defer close(s.done)
	defer close(s.events)
	sc := bufio.NewScanner(s.resp.Body)
	sc.Buffer(make([]byte, 1<<20), 1<<24)
	var ev sseEvent
	for sc.Scan() {
		line := sc.Text()
		switch {
		case line == "":
			if ev.name != "" {
				ev.at = time.Now()
				s.events <- ev
			}
			ev = sseEvent{}
		case strings.HasPrefix(line, ":"), strings.HasPrefix(line, "retry:"):
		case strings.HasPrefix(line, "event: "):
			ev.name = strings.TrimPrefix(line, "event: ")
		case strings.HasPrefix(line, "data: "):
			ev.data = strings.TrimPrefix(line, "data: ")
		case strings.HasPrefix(line, "id: "):
			ev.id = strings.TrimPrefix(line, "id: ")
		}
	}
}

// next returns the next event, failing the test when none comes within d.
func (s *eventStream) next(t *testing.T, d time.Duration) sseEvent {
	t.Helper()
	select {
	case ev, ok := <-s.events:
		if !ok {
			t.Fatal("the events stream ended")
		}
		return ev
	case <-time.After(d):
		t.Fatalf("no event within %v", d)
	}
	return sseEvent{}
}

// initial reads a full state: reset, the servers, synced. It returns the
// server ids in order and synced's id.
func (s *eventStream) initial(t *testing.T) (ids []string, lastID string) {
	t.Helper()
	if ev := s.next(t, fleetWait); ev.name != discoverysvc.EventReset {
		t.Fatalf("first event %q %s, want reset", ev.name, ev.data)
	}
	for {
		ev := s.next(t, fleetWait)
		switch ev.name {
		case discoverysvc.EventServerAdded:
			ids = append(ids, ev.server(t)["id"].(string))
		case discoverysvc.EventDrainStarted, discoverysvc.EventActivity:
		case discoverysvc.EventSynced:
			if ev.id == "" {
				t.Fatal("synced carries no id to resume from")
			}
			return ids, ev.id
		default:
			t.Fatalf("in the full state: %q %s", ev.name, ev.data)
		}
	}
}

func deleteServer(t *testing.T, c *clientv3.Client, id string) time.Time {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if _, err := c.Delete(ctx, schema.ServerKey("", id)); err != nil {
		t.Fatal(err)
	}
	return time.Now()
}

// TestEventsInitialStateThenChanges follows the stream from its full state
// through an add, a change and a removal, each within a second of the etcd
// write, with a lease-only heartbeat in between that must say nothing.
func TestEventsInitialStateThenChanges(t *testing.T) {
	f := startFleet(t, fleetOptions{})
	f.heartbeat(t, "", "eu-1", hbBody("eu-west", 9001, 0.2, false))
	f.heartbeat(t, "", "us-1", hbBody("us-east", 9003, 0.1, false))
	poll.True(t, fleetWait, "the hub to see both servers", func() bool { return f.fleet.Hub().State().Len() == 2 })

	s := openEvents(t, f.srv.URL, "")
	ids, _ := s.initial(t)
	if strings.Join(ids, ",") != "eu-1,us-1" {
		t.Fatalf("full state has %v, want eu-1,us-1", ids)
	}

	// Within one second of the write, as the fleet page needs.
	const within = time.Second
	etcdtest.PutServer(t, f.client, "", schema.Server{ID: "eu-2", Region: "eu-west", URL: "http://127.0.0.1:9002", Load: 0.4})
	wrote := time.Now()
	ev := s.next(t, within)
	if ev.name != discoverysvc.EventServerAdded || ev.server(t)["id"] != "eu-2" || ev.server(t)["region"] != "eu-west" {
		t.Fatalf("after adding eu-2: %q %s", ev.name, ev.data)
	}
	if ev.id == "" {
		t.Fatal("a change carries no id to resume from")
	}
	t.Logf("add: event %v after the write", ev.at.Sub(wrote))

	// A heartbeat that changes nothing renews the lease only: no event. The
	// next event must be the change that follows it.
	if code := f.heartbeat(t, "", "eu-1", hbBody("eu-west", 9001, 0.2, false)); code != 200 {
		t.Fatal(code)
	}
	etcdtest.PutServer(t, f.client, "", schema.Server{ID: "eu-2", Region: "eu-west", URL: "http://127.0.0.1:9002", Load: 0.7})
	wrote = time.Now()
	ev = s.next(t, within)
	if ev.name != discoverysvc.EventServerChanged || ev.server(t)["id"] != "eu-2" || ev.server(t)["load"] != 0.7 {
		t.Fatalf("after changing eu-2: %q %s", ev.name, ev.data)
	}
	t.Logf("change: event %v after the write", ev.at.Sub(wrote))

	// Rewriting the same value is a watch event but no change.
	etcdtest.PutServer(t, f.client, "", schema.Server{ID: "eu-2", Region: "eu-west", URL: "http://127.0.0.1:9002", Load: 0.7})
	wrote = deleteServer(t, f.client, "eu-2")
	ev = s.next(t, within)
	if ev.name != discoverysvc.EventServerRemoved || ev.server(t)["id"] != "eu-2" || ev.server(t)["region"] != "eu-west" {
		t.Fatalf("after removing eu-2: %q %s", ev.name, ev.data)
	}
	t.Logf("remove: event %v after the write", ev.at.Sub(wrote))
}

func TestEventsResumeFromLastEventID(t *testing.T) {
	// A history of one revision: older ids fall out of it at once.
	f := startFleet(t, fleetOptions{config: discoverysvc.Config{EventHistory: 1}})
	etcdtest.PutServer(t, f.client, "", schema.Server{ID: "eu-1", Region: "eu-west", URL: "http://127.0.0.1:9001", Load: 0.2})
	poll.True(t, fleetWait, "the hub to see eu-1", func() bool { return f.fleet.Hub().State().Len() == 1 })

	s := openEvents(t, f.srv.URL, "")
	_, last := s.initial(t)
	s.close()

	// Missed while away: one add. Resuming gets just that, no full state.
	etcdtest.PutServer(t, f.client, "", schema.Server{ID: "eu-2", Region: "eu-west", URL: "http://127.0.0.1:9002", Load: 0.3})
	poll.True(t, fleetWait, "the hub to see eu-2", func() bool { return f.fleet.Hub().State().Len() == 2 })
	r := openEvents(t, f.srv.URL, last)
	ev := r.next(t, fleetWait)
	if ev.name != discoverysvc.EventServerAdded || ev.server(t)["id"] != "eu-2" {
		t.Fatalf("resumed with %q %s, want eu-2 added", ev.name, ev.data)
	}

	// An id from before anything the hub remembers, or from the future (a
	// replica ahead of this one): the full state.
	for _, id := range []string{"1", "999999999"} {
		r := openEvents(t, f.srv.URL, id)
		if ids, _ := r.initial(t); strings.Join(ids, ",") != "eu-1,eu-2" {
			t.Fatalf("Last-Event-ID %s: full state %v", id, ids)
		}
	}

	// Not an id this service wrote: refused, with a message that says so.
	// (Spaces around a header value are not the value: HTTP trims them.)
	client := &http.Client{Timeout: fleetWait}
	for _, id := range []string{"abc", "-5", "+5", "05", "5x", "99999999999999999999"} {
		req, _ := http.NewRequest(http.MethodGet, f.srv.URL+"/v1/events", nil)
		req.Header.Set("Last-Event-ID", id)
		resp, err := client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusBadRequest || !strings.Contains(string(b), "Last-Event-ID") {
			t.Errorf("Last-Event-ID %q: %d %s, want 400 naming the header", id, resp.StatusCode, b)
		}
	}
}

// etcdWatchers reads etcd's own count of open watchers from the embedded
// server's metrics (process-wide: the test's member is the only one).
func etcdWatchers(t *testing.T) float64 {
	t.Helper()
	mfs, err := prometheus.DefaultGatherer.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() == "etcd_debugging_mvcc_watcher_total" {
			return mf.GetMetric()[0].GetGauge().GetValue()
		}
	}
	t.Fatal("etcd reports no etcd_debugging_mvcc_watcher_total")
	return 0
}

func TestEventsSubscribersShareOneWatch(t *testing.T) {
	f := startFleet(t, fleetOptions{})
	etcdtest.PutServer(t, f.client, "", schema.Server{ID: "eu-1", Region: "eu-west", URL: "http://127.0.0.1:9001", Load: 0.2})
	poll.True(t, fleetWait, "the hub to see eu-1", func() bool { return f.fleet.Hub().State().Len() == 1 })
	before := etcdWatchers(t)

	const n = 100
	streams := make([]*eventStream, n)
	var wg sync.WaitGroup
	for i := range streams {
		wg.Go(func() {
			streams[i] = openEvents(t, f.srv.URL, "")
		})
	}
	wg.Wait()
	for _, s := range streams {
		s.initial(t)
	}
	if got := f.fleet.Hub().Subscribers(); got != n {
		t.Fatalf("hub has %d subscribers, want %d", got, n)
	}
	if after := etcdWatchers(t); after != before {
		t.Fatalf("etcd watchers went from %v to %v with %d subscribers; they must share the fleet's one watch", before, after, n)
	}
	etcdtest.PutServer(t, f.client, "", schema.Server{ID: "eu-2", Region: "eu-west", URL: "http://127.0.0.1:9002", Load: 0.3})
	for i, s := range streams {
		if ev := s.next(t, fleetWait); ev.name != discoverysvc.EventServerAdded {
			t.Fatalf("subscriber %d got %q %s", i, ev.name, ev.data)
		}
	}
	if got, _ := metrictest.Value(f.scrape(t), "sessionpin_discovery_events_subscribers"); got != n {
		t.Fatalf("sessionpin_discovery_events_subscribers = %v, want %d", got, n)
	}
}

// smallBuffers shrinks the kernel send buffer of every accepted connection,
// so a client that stops reading backs up into the server within a few
// kilobytes instead of megabytes.
type smallBuffers struct{ net.Listener }

func (l smallBuffers) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if tc, ok := c.(*net.TCPConn); ok {
		_ = tc.SetWriteBuffer(4096)
	}
	return c, err
}

func TestEventsSlowSubscriberIsDropped(t *testing.T) {
	f := startFleet(t, fleetOptions{
		config:   discoverysvc.Config{SubscriberBuffer: 4},
		listener: func(l net.Listener) net.Listener { return smallBuffers{l} },
	})
	// The stuck client sends its request and never reads again.
	stuck, err := net.Dial("tcp", f.srv.Listener.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer stuck.Close()
	_ = stuck.(*net.TCPConn).SetReadBuffer(4096)
	fmt.Fprintf(stuck, "GET /v1/events HTTP/1.1\r\nHost: fleet\r\n\r\n")
	good := openEvents(t, f.srv.URL, "")
	good.initial(t)
	poll.True(t, fleetWait, "both subscribers to be registered", func() bool { return f.fleet.Hub().Subscribers() == 2 })

	// Big records fill the stuck client's buffers fast; the good one keeps
	// reading every change.
	pad := strings.Repeat("x", 1500)
	i := 0
	poll.Until(t, fleetWait, "the stuck subscriber to be dropped", func() error {
		for range 20 {
			i++
			etcdtest.PutServer(t, f.client, "", schema.Server{ID: "s-" + strconv.Itoa(i), Region: "r", URL: "http://127.0.0.1:9000/" + pad, Load: 0})
			if ev := good.next(t, fleetWait); ev.name != discoverysvc.EventServerAdded {
				t.Fatalf("good subscriber got %q", ev.name)
			}
		}
		if n := f.fleet.Hub().Subscribers(); n != 1 {
			return fmt.Errorf("%d subscribers", n)
		}
		return nil
	})
	if got, _ := metrictest.Value(f.scrape(t), "sessionpin_discovery_events_dropped_total"); got != 1 {
		t.Fatalf("dropped = %v, want 1", got)
	}
	// The good subscriber still hears of changes after the drop.
	etcdtest.PutServer(t, f.client, "", schema.Server{ID: "after", Region: "r", URL: "http://127.0.0.1:9000", Load: 0})
	if ev := good.next(t, fleetWait); ev.name != discoverysvc.EventServerAdded || ev.server(t)["id"] != "after" {
		t.Fatalf("after the drop: %q %s", ev.name, ev.data)
	}
	// The stuck client's connection is closed by the server: draining what
	// the kernel buffered ends in EOF rather than blocking forever.
	_ = stuck.SetReadDeadline(time.Now().Add(fleetWait))
	if _, err := io.Copy(io.Discard, stuck); err != nil {
		t.Fatalf("the dropped client's connection was not closed: %v", err)
	}
}

// putActivity writes edge's activity report as an edge does.
func putActivity(t *testing.T, c *clientv3.Client, edge string, servers map[string]schema.ServerActivity) {
	t.Helper()
	b, _ := json.Marshal(schema.Activity{Edge: edge, Region: "eu-west", At: time.Now(), Servers: servers})
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if _, err := c.Put(ctx, schema.EdgeKey("", edge), string(b)); err != nil {
		t.Fatal(err)
	}
}

func putDrain(t *testing.T, c *clientv3.Client, id string, since time.Time) {
	t.Helper()
	b, _ := json.Marshal(schema.Drain{ID: id, Since: since, Reason: "maintenance"})
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if _, err := c.Put(ctx, schema.DrainKey("", id), string(b)); err != nil {
		t.Fatal(err)
	}
}

// nextNamed skips events until one named name, failing after d.
func (s *eventStream) nextNamed(t *testing.T, d time.Duration, name string) sseEvent {
	t.Helper()
	deadline := time.Now().Add(d)
	for {
		ev := s.next(t, time.Until(deadline))
		if ev.name == name {
			return ev
		}
	}
}

// TestEventsDrainsAndActivity follows an operator drain and the edges'
// pinned activity through the stream and the metrics, up to the moment the
// drained server's quiet period ends without any etcd write.
func TestEventsDrainsAndActivity(t *testing.T) {
	f := startFleet(t, fleetOptions{})
	f.heartbeat(t, "", "eu-1", hbBody("eu-west", 9001, 0.2, false))
	f.heartbeat(t, "", "eu-2", hbBody("eu-west", 9002, 0.2, false))
	putDrain(t, f.client, "ghost", time.Now()) // drained ahead of registering
	poll.True(t, fleetWait, "the hub to see both servers", func() bool { return f.fleet.Hub().State().Len() == 2 })

	s := openEvents(t, f.srv.URL, "")
	if ev := s.nextNamed(t, fleetWait, discoverysvc.EventDrainStarted); ev.server(t)["id"] != "ghost" {
		t.Fatalf("full state: %q %s, want ghost's drain", ev.name, ev.data)
	}
	s.nextNamed(t, fleetWait, discoverysvc.EventSynced)

	// The operator drains eu-1: in one revision, its record turns draining,
	// the drain starts, and its activity says it is not drained yet.
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute) // the whole test
	defer cancel()
	if _, err := f.reg.Drain(ctx, "eu-1", "kernel upgrade"); err != nil {
		t.Fatal(err)
	}
	ev := s.next(t, fleetWait)
	if ev.name != discoverysvc.EventServerChanged || ev.server(t)["draining"] != true {
		t.Fatalf("after the drain: %q %s, want eu-1 changed to draining", ev.name, ev.data)
	}
	ev = s.next(t, fleetWait)
	if d := ev.server(t); ev.name != discoverysvc.EventDrainStarted || d["id"] != "eu-1" || d["reason"] != "kernel upgrade" || d["since"] == nil {
		t.Fatalf("after the drain: %q %s, want drain_started", ev.name, ev.data)
	}
	ev = s.next(t, fleetWait)
	if a := ev.server(t); ev.name != discoverysvc.EventActivity || a["id"] != "eu-1" || a["drained"] != false {
		t.Fatalf("after the drain: %q %s, want eu-1 not drained", ev.name, ev.data)
	}
	f.waitMetric(t, `sessionpin_discovery_servers{region="eu-west",state="draining"}`, 1)

	// An edge reports pinned traffic to both servers.
	putActivity(t, f.client, "edge-a", map[string]schema.ServerActivity{
		"eu-1": {Pinned: 3, Minute: 12, Last: time.Now()},
		"eu-2": {Pinned: 1, Minute: 4, Last: time.Now()},
	})
	got := map[string]map[string]any{}
	for range 2 {
		ev := s.next(t, fleetWait)
		if ev.name != discoverysvc.EventActivity {
			t.Fatalf("after the edge's report: %q %s", ev.name, ev.data)
		}
		a := ev.server(t)
		got[a["id"].(string)] = a
	}
	if a := got["eu-1"]; a["pinned_last_minute"] != 12.0 || a["edges"] != 1.0 || a["last_pinned"] == nil {
		t.Fatalf("eu-1 activity %v", a)
	}
	if a := got["eu-2"]; a["pinned_last_minute"] != 4.0 {
		t.Fatalf("eu-2 activity %v", a)
	}
	f.waitMetric(t, `sessionpin_discovery_pinned_requests_per_minute{server="eu-1"}`, 12)
	f.waitMetric(t, `sessionpin_discovery_pinned_requests_per_minute{server="eu-2"}`, 4)

	// eu-2 is drained by an operator who started long ago, and its last
	// pinned request is just short of the quiet period: it becomes drained
	// as time passes, with no write to etcd.
	putDrain(t, f.client, "eu-2", time.Now().Add(-10*time.Minute))
	putActivity(t, f.client, "edge-a", map[string]schema.ServerActivity{
		"eu-1": {Pinned: 3, Minute: 12, Last: time.Now()},
		"eu-2": {Pinned: 0, Minute: 0, Last: time.Now().Add(-schema.DefaultQuiet + 4*time.Second)},
	})
	for {
		ev := s.nextNamed(t, fleetWait, discoverysvc.EventActivity)
		if a := ev.server(t); a["id"] == "eu-2" && a["drained"] == true {
			if ev.id != "" {
				t.Fatalf("a drained server by the passing of time carries revision id %s", ev.id)
			}
			break
		}
	}
	f.waitMetric(t, `sessionpin_discovery_servers{region="eu-west",state="drained"}`, 1)
	f.waitMetric(t, `sessionpin_discovery_servers{region="eu-west",state="draining"}`, 1)

	// A client that resumes hears again that eu-2 is drained.
	_, last := openEvents(t, f.srv.URL, "").initial(t)
	r := openEvents(t, f.srv.URL, last)
	if a := r.nextNamed(t, fleetWait, discoverysvc.EventActivity).server(t); a["id"] != "eu-2" || a["drained"] != true {
		t.Fatalf("resumed: %v", a)
	}

	// The operator undrains eu-1; the edge goes away.
	if _, err := f.reg.Undrain(ctx, "eu-1"); err != nil {
		t.Fatal(err)
	}
	if ev := s.nextNamed(t, fleetWait, discoverysvc.EventDrainEnded); ev.server(t)["id"] != "eu-1" {
		t.Fatalf("undrain: %s", ev.data)
	}
	if _, err := f.client.Delete(ctx, schema.EdgeKey("", "edge-a")); err != nil {
		t.Fatal(err)
	}
	ev = s.nextNamed(t, fleetWait, discoverysvc.EventActivity)
	if a := ev.server(t); a["pinned_last_minute"] != 0.0 {
		t.Fatalf("after the edge left: %v", a)
	}
	f.waitMetric(t, `sessionpin_discovery_servers{region="eu-west",state="active"}`, 1)
}
