package placement

import (
	"testing"
	"time"

	"github.com/sessionpin/sessionpin/discoverysvc/schema"
	"github.com/sessionpin/sessionpin/discoverysvc/watch"
)

// withData is s with a write origin and progress per origin; a negative lag
// is an unknown progress.
func withData(s schema.Server, origin string, lags map[string]time.Duration) schema.Server {
	s.Origin = origin
	if lags != nil {
		s.Progress = map[string]schema.Progress{}
		for o, lag := range lags {
			if lag < 0 {
				s.Progress[o] = schema.Progress{Unknown: true}
				continue
			}
			s.Progress[o] = schema.Progress{LagMS: lag.Milliseconds()}
		}
	}
	return s
}

func TestCatchUpCovers(t *testing.T) {
	now := time.Unix(1_800_000_000, 0)
	on := CatchUp{Limit: 30 * time.Second, Skew: 500 * time.Millisecond}
	lagging := withData(srv("us-1", "us", 0, false), "us", map[string]time.Duration{"eu": time.Second, "ap": -1})
	entry := func(s schema.Server) *watch.Entry { return snapshot(s).Server(s.ID) }
	tests := []struct {
		name     string
		c        CatchUp
		s        schema.Server
		w        Write
		ok       bool
		wantWait time.Duration
	}{
		{"off covers everything", CatchUp{}, lagging, Write{now, "ap"}, true, 0},
		{"no write is covered", on, lagging, Write{}, true, 0},
		{"the server's own origin", on, lagging, Write{now, "us"}, true, 0},
		{"a server that takes no part", on, srv("x", "us", 0, false), Write{now, "eu"}, true, 0},
		{"an origin the server does not report", on, lagging, Write{now.Add(-time.Hour), "sa"}, false, UnknownWait},
		{"an unknown progress, however old the write", on, lagging, Write{now.Add(-time.Hour), "ap"}, false, UnknownWait},
		{"older than lag and skew", on, lagging, Write{now.Add(-1500 * time.Millisecond), "eu"}, true, 0},
		{"just younger than lag and skew", on, lagging, Write{now.Add(-1499 * time.Millisecond), "eu"}, false, time.Millisecond},
		{"younger than the lag", on, lagging, Write{now.Add(-200 * time.Millisecond), "eu"}, false, 1300 * time.Millisecond},
		{"a negative skew counts as none", CatchUp{Limit: time.Second, Skew: -time.Hour}, lagging, Write{now.Add(-time.Second), "eu"}, true, 0},
		{"a write in the future waits it out", on, lagging, Write{now.Add(2 * time.Second), "eu"}, false, 3500 * time.Millisecond},
		{"a progress with only other origins", on, withData(srv("y", "us", 0, false), "", map[string]time.Duration{"ap": 0}), Write{now, "eu"}, false, UnknownWait},
		{"an origin without progress still takes part", on, withData(srv("z", "us", 0, false), "us", nil), Write{now.Add(-time.Hour), "eu"}, false, UnknownWait},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ok, wait := tt.c.Covers(entry(tt.s), tt.w, now)
			if ok != tt.ok || wait != tt.wantWait {
				t.Errorf("Covers = %v, %v; want %v, %v", ok, wait, tt.ok, tt.wantWait)
			}
		})
	}
}

func TestCatchUpExpired(t *testing.T) {
	now := time.Unix(1_800_000_000, 0)
	c := CatchUp{Limit: 30 * time.Second}
	for _, tt := range []struct {
		age  time.Duration
		want bool
	}{{29 * time.Second, false}, {30 * time.Second, true}, {time.Hour, true}, {-time.Second, false}} {
		if got := c.Expired(Write{now.Add(-tt.age), "eu"}, now); got != tt.want {
			t.Errorf("Expired(age %s) = %v, want %v", tt.age, got, tt.want)
		}
	}
	if !c.On() || (CatchUp{}).On() || (CatchUp{Limit: -1}).On() {
		t.Error("On: only a positive limit turns data-aware moves on")
	}
}

func TestCatchUpAsOf(t *testing.T) {
	now := time.Unix(1_800_000_000, 0)
	c := CatchUp{Limit: time.Minute, Fresh: 10 * time.Second}
	for _, tt := range []struct {
		name      string
		c         CatchUp
		confirmed time.Time
		want      time.Time
	}{
		{"no confirmation known", c, time.Time{}, now},
		{"confirmed just now", c, now, now},
		{"confirmed within Fresh", c, now.Add(-10 * time.Second), now},
		{"confirmed before Fresh", c, now.Add(-11 * time.Second), now.Add(-11 * time.Second)},
		{"Fresh 0 trusts every view", CatchUp{Limit: time.Minute}, now.Add(-time.Hour), now},
	} {
		if got := tt.c.asOf(now, tt.confirmed); !got.Equal(tt.want) {
			t.Errorf("%s: asOf = %v, want %v", tt.name, got, tt.want)
		}
	}
}

func TestRebalanceDataAware(t *testing.T) {
	now := time.Unix(1_800_000_000, 0)
	ago := func(d time.Duration) time.Time { return now.Add(-d) }
	fleet := snapshot(
		withData(srv("eu-1", "eu", 0.30, false), "eu", map[string]time.Duration{"us": 2 * time.Second}),
		withData(srv("eu-2", "eu", 0.45, false), "eu", map[string]time.Duration{"us": -1}),
		withData(srv("eu-d", "eu", 0.00, true), "eu", map[string]time.Duration{"us": 0}),
		withData(srv("us-1", "us", 0.10, false), "us", map[string]time.Duration{"eu": time.Second}),
		withData(srv("us-2", "us", 0.90, false), "us", map[string]time.Duration{"eu": 250 * time.Millisecond}),
		srv("ap-1", "ap", 0.50, false), // takes no part
	)
	onlyEU := snapshot(
		withData(srv("eu-1", "eu", 0.30, false), "eu", map[string]time.Duration{"us": 2 * time.Second}),
		withData(srv("eu-2", "eu", 0.45, false), "eu", map[string]time.Duration{"us": -1}),
	)
	on := CatchUp{Limit: 30 * time.Second, Skew: 500 * time.Millisecond}
	fresh := on
	fresh.Fresh = 10 * time.Second
	type want struct {
		server              string
		reason              string
		moved, held, unsafe bool
		catchingUp          bool
		wait                time.Duration
	}
	tests := []struct {
		name string
		c    CatchUp
		snap *watch.Snapshot
		req  RefreshRequest
		want want
	}{
		{"c: the target holds the write: move", on, fleet,
			RefreshRequest{Current: "eu-1", Closest: "us-1", Write: Write{ago(2 * time.Second), "eu"}},
			want{server: "us-1", reason: ReasonRefreshMove, moved: true}},
		{"c: the target lags the write: the client stays", on, fleet,
			RefreshRequest{Current: "eu-1", Closest: "us-1", Write: Write{ago(time.Second), "eu"}},
			want{server: "eu-1", reason: ReasonRefreshKeep, held: true}},
		{"c: data-aware moves off: move", CatchUp{}, fleet,
			RefreshRequest{Current: "eu-1", Closest: "us-1", Write: Write{ago(time.Second), "eu"}},
			want{server: "us-1", reason: ReasonRefreshMove, moved: true}},
		{"c: no known write: move", on, fleet,
			RefreshRequest{Current: "eu-1", Closest: "us-1"},
			want{server: "us-1", reason: ReasonRefreshMove, moved: true}},
		{"c: unknown progress, write past the limit: unsafe move", on, fleet,
			RefreshRequest{Current: "us-1", Closest: "eu-2", Write: Write{ago(31 * time.Second), "us"}},
			want{server: "eu-2", reason: ReasonRefreshMove, moved: true, unsafe: true}},
		{"c: unknown progress within the limit: held", on, fleet,
			RefreshRequest{Current: "us-1", Closest: "eu-2", Write: Write{ago(29 * time.Second), "us"}},
			want{server: "us-1", reason: ReasonRefreshKeep, held: true}},
		{"c: a target that takes no part: move", on, fleet,
			RefreshRequest{Current: "eu-1", Closest: "ap-1", Write: Write{now, "eu"}},
			want{server: "ap-1", reason: ReasonRefreshMove, moved: true}},
		{"c: same region, draining current, same origin: move", on, fleet,
			RefreshRequest{Current: "eu-d", Closest: "eu-1", Write: Write{now, "eu"}},
			want{server: "eu-1", reason: ReasonRefreshMove, moved: true}},
		{"a: critical on a draining server, data there: leaves", on, fleet,
			RefreshRequest{Current: "eu-d", Closest: "eu-1", Critical: true, Write: Write{ago(3 * time.Second), "us"}},
			want{server: "eu-1", reason: ReasonRefreshMove, moved: true}},
		{"a: critical on a draining server, data not there: stays", on, fleet,
			RefreshRequest{Current: "eu-d", Closest: "eu-1", Critical: true, Write: Write{ago(time.Second), "us"}},
			want{server: "eu-d", reason: ReasonRefreshKeep}},
		{"a: critical on a draining server past the limit: still stays", on, fleet,
			RefreshRequest{Current: "eu-d", Closest: "eu-1", Critical: true, Write: Write{ago(time.Hour), "ap"}},
			want{server: "eu-d", reason: ReasonRefreshKeep}},
		{"a: critical on a draining server, no known write: stays", on, fleet,
			RefreshRequest{Current: "eu-d", Closest: "eu-1", Critical: true},
			want{server: "eu-d", reason: ReasonRefreshKeep}},
		{"a: critical on a draining server, moves off: stays", CatchUp{}, fleet,
			RefreshRequest{Current: "eu-d", Closest: "eu-1", Critical: true, Write: Write{ago(time.Hour), "us"}},
			want{server: "eu-d", reason: ReasonRefreshKeep}},
		{"a: critical on a live server, data there: stays", on, fleet,
			RefreshRequest{Current: "eu-1", Closest: "us-1", Critical: true, Write: Write{ago(time.Hour), "eu"}},
			want{server: "eu-1", reason: ReasonRefreshKeep}},
		{"b: C holds the write: fail over to C", on, fleet,
			RefreshRequest{Current: "gone", Closest: "us-1", Write: Write{ago(2 * time.Second), "eu"}},
			want{server: "us-1", reason: ReasonFailover, moved: true}},
		{"b: C lags, another server of its region holds the write", on, fleet,
			RefreshRequest{Current: "gone", Closest: "us-1", Write: Write{ago(time.Second), "eu"}},
			want{server: "us-2", reason: ReasonFailover, moved: true}},
		{"b: C's region lags, the edge's region holds it", on, fleet,
			RefreshRequest{Current: "gone", Closest: "us-1", Write: Write{ago(100 * time.Millisecond), "eu"}},
			want{server: "eu-1", reason: ReasonFailover, moved: true}},
		{"b: nobody holds it yet: wait for the nearest catch-up", on, onlyEU,
			RefreshRequest{Current: "gone", Closest: "eu-1", Write: Write{ago(200 * time.Millisecond), "us"}},
			want{server: "<nil>", reason: ReasonFailover, catchingUp: true, wait: 2300 * time.Millisecond}},
		{"b: nobody can tell: wait, unknown how long", on, snapshot(withData(srv("eu-2", "eu", 0.45, false), "eu", map[string]time.Duration{"us": -1})),
			RefreshRequest{Current: "gone", Closest: "eu-2", Write: Write{ago(time.Second), "us"}},
			want{server: "<nil>", reason: ReasonFailover, catchingUp: true, wait: UnknownWait}},
		{"b: nobody holds it, past the limit: unsafe failover", on, onlyEU,
			RefreshRequest{Current: "gone", Closest: "eu-2", Write: Write{ago(time.Minute), "ap"}},
			want{server: "eu-2", reason: ReasonFailover, moved: true, unsafe: true}},
		{"b: moves off: fail over to C", CatchUp{}, onlyEU,
			RefreshRequest{Current: "gone", Closest: "eu-2", Write: Write{now, "us"}},
			want{server: "eu-2", reason: ReasonFailover, moved: true}},
		{"c: a current view: the target holds the write", fresh, fleet,
			RefreshRequest{Current: "eu-1", Closest: "us-1", Write: Write{ago(3 * time.Second), "eu"}, Confirmed: ago(10 * time.Second)},
			want{server: "us-1", reason: ReasonRefreshMove, moved: true}},
		{"c: an old view: progress as of its confirmation, held", fresh, fleet,
			RefreshRequest{Current: "eu-1", Closest: "us-1", Write: Write{ago(3 * time.Second), "eu"}, Confirmed: ago(10*time.Second + time.Millisecond)},
			want{server: "eu-1", reason: ReasonRefreshKeep, held: true}},
		{"c: an old view confirmed after the write covered it: move", fresh, fleet,
			RefreshRequest{Current: "eu-1", Closest: "us-1", Write: Write{ago(time.Minute), "eu"}, Confirmed: ago(20 * time.Second)},
			want{server: "us-1", reason: ReasonRefreshMove, moved: true}},
		{"c: an old view, write past the limit: unsafe move", fresh, fleet,
			RefreshRequest{Current: "eu-1", Closest: "us-1", Write: Write{ago(31 * time.Second), "eu"}, Confirmed: ago(30 * time.Second)},
			want{server: "us-1", reason: ReasonRefreshMove, moved: true, unsafe: true}},
		{"b: an old view: wait, unknown how long", fresh, onlyEU,
			RefreshRequest{Current: "gone", Closest: "eu-1", Write: Write{ago(3 * time.Second), "us"}, Confirmed: ago(15 * time.Second)},
			want{server: "<nil>", reason: ReasonFailover, catchingUp: true, wait: UnknownWait}},
		{"b: an old view confirmed after the write covered it: fail over", fresh, onlyEU,
			RefreshRequest{Current: "gone", Closest: "eu-1", Write: Write{ago(time.Minute), "us"}, Confirmed: ago(25 * time.Second)},
			want{server: "eu-1", reason: ReasonFailover, moved: true}},
		{"b: nothing left at all", on, snapshot(),
			RefreshRequest{Current: "gone", Write: Write{now, "us"}},
			want{server: "<nil>", reason: ReasonFailover}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := Edge{Region: "eu", Hysteresis: 0.1, CatchUp: tt.c, Now: func() time.Time { return now }}
			out := e.Rebalance(tt.snap, tt.req, 0)
			got := want{id(out.Server), out.Reason, out.Moved, out.Held, out.Unsafe, out.CatchingUp, out.Wait}
			if got != tt.want {
				t.Errorf("Rebalance = %+v\nwant        %+v", got, tt.want)
			}
		})
	}
}
