package client

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

func TestIsCareless(t *testing.T) {
	tests := []struct {
		n    int
		f    float64
		want int // careless among n clients
	}{
		{18, 0, 0},
		{18, 0.2, 4},
		{9, 0.2, 2},
		{3, 0.2, 1},
		{18, 1, 18},
		{18, 0.5, 9},
		{1, 0.4, 0},
	}
	for _, tt := range tests {
		got := 0
		for i := 0; i < tt.n; i++ {
			if IsCareless(i, tt.f) {
				got++
			}
		}
		if got != tt.want {
			t.Errorf("%d clients, share %v: %d careless, want %d", tt.n, tt.f, got, tt.want)
		}
	}
	// Spread over the numbering: 6 clients a region, 3 regions, 0.2.
	var at []int
	for i := 0; i < 18; i++ {
		if IsCareless(i, 0.2) {
			at = append(at, i)
		}
	}
	if fmt.Sprint(at) != "[2 7 12 17]" {
		t.Errorf("careless clients %v, want [2 7 12 17] (at least one in every region)", at)
	}
}

func TestCatchUpWait(t *testing.T) {
	tests := []struct {
		in   string
		want time.Duration
	}{
		{"3", 3 * time.Second},
		{" 2 ", 2 * time.Second},
		{"0.5", 500 * time.Millisecond},
		{"0", minCatchUpWait},
		{"-4", minCatchUpWait},
		{"3600", maxCatchUpWait},
		{"1e308", maxCatchUpWait},
		{"", time.Second},
		{"NaN", time.Second},
		{"Inf", time.Second},
		{"Wed, 21 Oct 2026 07:28:00 GMT", time.Second},
	}
	for _, tt := range tests {
		if got := catchUpWait(tt.in); got != tt.want {
			t.Errorf("Retry-After %q: wait %v, want %v", tt.in, got, tt.want)
		}
	}
}

// fakeEdge answers as an edge in front of the lab's app would: it issues a
// new pin on every POST, whatever the status, and none on a GET. Its first
// refresh without the critical flag is answered 503 catching_up, its
// second is held with X-Session-Hold.
type fakeEdge struct {
	mu       sync.Mutex
	issued   int
	last     string   // the last pin issued
	bad      []string // requests that did not carry the last pin
	cookies  int
	critical []bool // criticalTaskInProgress of each refresh
	easy     int    // refreshes without the flag so far
}

func (f *fakeEdge) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if got := r.Header.Get(PinHeader); got != f.last {
		f.bad = append(f.bad, fmt.Sprintf("%s %s carried %q, last issued %q", r.Method, r.URL.Path, got, f.last))
	}
	if r.Header.Get("Cookie") != "" {
		f.cookies++
	}
	w.Header().Set("X-Lab-Server", "s1")
	status, body := 200, map[string]any{}
	switch {
	case r.URL.Path == "/closestToMe":
		body["closestServerId"] = "s1"
	case r.URL.Path == "/auth/refresh":
		var b struct {
			Critical bool `json:"criticalTaskInProgress"`
		}
		_ = json.NewDecoder(r.Body).Decode(&b)
		f.critical = append(f.critical, b.Critical)
		if !b.Critical {
			f.easy++
			switch f.easy {
			case 1:
				w.Header().Set("Retry-After", "0")
				status, body = 503, map[string]any{"error": "catching_up", "server": "s1"}
			case 2:
				w.Header().Set("X-Session-Hold", "catching_up")
			}
		}
	case r.URL.Path == "/workflows" && r.Method == http.MethodPost:
		body["id"] = "r.1"
	case strings.HasSuffix(r.URL.Path, "/steps"):
		n, _ := strconv.Atoi(r.URL.Query().Get("expect"))
		body["step"] = n + 1
		if n == 2 {
			// A write answered 409 still re-issues the pin.
			status, body = 409, map[string]any{"error": "conflict"}
		}
	case r.Method == http.MethodGet:
		body["step"] = 3
	}
	if r.Method == http.MethodPost && status < 500 {
		f.issued++
		f.last = fmt.Sprintf("pin-%d", f.issued)
		w.Header().Set(PinHeader, f.last)
		http.SetCookie(w, &http.Cookie{Name: "sessionpin", Value: f.last, Path: "/"})
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(body)
}

func runAgainst(t *testing.T, f *fakeEdge, o Options, until func(k Counts) bool) Counts {
	t.Helper()
	srv := httptest.NewServer(f)
	defer srv.Close()
	tally := runUntil(t, srv.URL, o, "the client to get there", until)
	tally.mu.Lock()
	defer tally.mu.Unlock()
	if o.Careless {
		if tally.Careless != tally.Counts {
			t.Errorf("a careless client's counts %+v differ from the totals %+v", tally.Careless, tally.Counts)
		}
	} else if tally.Careless != (Counts{}) {
		t.Errorf("a careful client counted as careless: %+v", tally.Careless)
	}
	return tally.Counts
}

// runUntil runs one client against the edge at url until its counts
// satisfy until (polled, within 60 s), stops it, and returns its tally.
func runUntil(t *testing.T, url string, o Options, what string, until func(k Counts) bool) *Tally {
	t.Helper()
	tally := NewTally()
	c := New(0, url, (&net.Dialer{}).DialContext, tally, func() string { return "p" }, o)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); c.Run(ctx) }()
	defer func() { cancel(); <-done }()
	deadline := time.Now().Add(60 * time.Second)
	for {
		tally.mu.Lock()
		k := tally.Counts
		tally.mu.Unlock()
		if until(k) {
			return tally
		}
		if time.Now().After(deadline) {
			t.Fatalf("waiting 60s for %s: %+v", what, k)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// In header mode the client sends, on every request, the last pin any
// response gave it (a write's answer re-issues it, a 409 included), and no
// cookie. A refresh answered 503 catching_up is waited out and sent again;
// one answered with X-Session-Hold is counted as held.
func TestHeaderClientKeepsNewestPin(t *testing.T) {
	f := &fakeEdge{}
	k := runAgainst(t, f, Options{Header: true}, func(k Counts) bool { return k.Workflows >= 3 && k.HeldMoves >= 1 })
	f.mu.Lock()
	defer f.mu.Unlock()
	if len(f.bad) > 0 {
		t.Errorf("requests without the newest pin:\n%s", strings.Join(f.bad, "\n"))
	}
	if f.cookies > 0 {
		t.Errorf("%d requests carried cookies; a header client keeps none", f.cookies)
	}
	if k.CatchUpWaits != 1 || k.CatchUpWait != minCatchUpWait {
		t.Errorf("catch-up waits %d (%v), want 1 (%v)", k.CatchUpWaits, k.CatchUpWait, minCatchUpWait)
	}
	if k.HeldMoves != 1 {
		t.Errorf("held moves %d, want 1", k.HeldMoves)
	}
	if k.StaleSteps != 0 || k.StaleAfterMove != 0 || k.Moves != 0 {
		t.Errorf("counts %+v; nothing moved or read stale", k)
	}
	// Within a workflow the refresh carries the flag, after it not.
	if len(f.critical) < 2 || !f.critical[0] || f.critical[1] {
		t.Errorf("critical flags of the refreshes %v, want true then false", f.critical)
	}
}

// A careless client never sets the critical flag, and is counted apart
// as well as in the totals.
func TestCarelessClientNeverCritical(t *testing.T) {
	f := &fakeEdge{}
	runAgainst(t, f, Options{Header: true, Careless: true}, func(k Counts) bool { return k.Workflows >= 2 })
	f.mu.Lock()
	defer f.mu.Unlock()
	if len(f.critical) < 2 {
		t.Fatalf("%d refreshes", len(f.critical))
	}
	for i, c := range f.critical {
		if c {
			t.Errorf("refresh %d of a careless client carried the critical flag", i)
		}
	}
}

// A refresh that stays 503 catching_up is given up once the client has
// waited its budget, and the last 503 is returned.
func TestCatchUpWaitIsBounded(t *testing.T) {
	var mu sync.Mutex
	refreshes := 0
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/auth/refresh" {
			mu.Lock()
			refreshes++
			mu.Unlock()
			w.Header().Set("Retry-After", "0.25")
			w.WriteHeader(503)
			_, _ = w.Write([]byte(`{"error":"catching_up"}`))
			return
		}
		_, _ = w.Write([]byte(`{}`))
	}))
	defer srv.Close()
	tally := NewTally()
	c := New(0, srv.URL, (&net.Dialer{}).DialContext, tally, func() string { return "p" }, Options{Header: true})
	c.catchUpBudget = 600 * time.Millisecond
	a, err := c.refresh(context.Background(), false)
	if err != nil || !catchingUp(a) {
		t.Fatalf("got %v, %+v; want the last 503 catching_up", err, a)
	}
	// 250 + 250 + the 100 ms left, then one more try.
	mu.Lock()
	defer mu.Unlock()
	if refreshes != 4 || tally.CatchUpWaits != 3 || tally.CatchUpWait != 600*time.Millisecond {
		t.Errorf("%d refreshes, %d waits, %v waited; want 4, 3, 600ms", refreshes, tally.CatchUpWaits, tally.CatchUpWait)
	}
	if MaxCatchUpWait <= 30*time.Second {
		t.Errorf("MaxCatchUpWait %v: a client should outwait the edge's default catch-up bound (30s)", MaxCatchUpWait)
	}
}

// A refresh that moves the client to another region's server is counted as
// a move across regions, and the read right after it that finds the last
// workflow behind is counted as stale after the move.
func TestMoveAcrossRegionsAndReadBack(t *testing.T) {
	var mu sync.Mutex
	server := "a-1"
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		defer mu.Unlock()
		body := map[string]any{}
		switch {
		case r.URL.Path == "/auth/refresh":
			var b struct {
				Critical bool `json:"criticalTaskInProgress"`
			}
			_ = json.NewDecoder(r.Body).Decode(&b)
			if !b.Critical {
				// Every refresh without the flag moves the client
				// to the other region.
				server = map[string]string{"a-1": "b-1", "b-1": "a-1"}[server]
				w.Header().Set("X-Session-Server-Changed", "1")
			}
		case r.URL.Path == "/workflows" && r.Method == http.MethodPost:
			body["id"] = "r.1"
		case strings.HasSuffix(r.URL.Path, "/steps"):
			n, _ := strconv.Atoi(r.URL.Query().Get("expect"))
			body["step"] = n + 1
		case r.Method == http.MethodGet && strings.HasPrefix(r.URL.Path, "/workflows/"):
			body["step"] = 1 // behind: the workflow had three steps
		}
		w.Header().Set("X-Lab-Server", server)
		if r.Method == http.MethodPost {
			w.Header().Set(PinHeader, "pin-"+server)
		}
		_ = json.NewEncoder(w).Encode(body)
	}))
	defer srv.Close()
	region := func(id string) string { return strings.Split(id, "-")[0] }
	tally := runUntil(t, srv.URL, Options{Header: true, RegionOf: region}, "two stale reads after a move",
		func(k Counts) bool { return k.StaleAfterMove >= 2 })
	tally.mu.Lock()
	defer tally.mu.Unlock()
	if tally.Moves < 2 || tally.MovesAcross != tally.Moves {
		t.Errorf("moves %d, across regions %d; want every move across", tally.Moves, tally.MovesAcross)
	}
	if tally.StaleSteps != 0 || tally.WrongServer != 0 {
		t.Errorf("counts %+v: the steps ran on the pinned server", tally.Counts)
	}
}

func TestEdgeFor(t *testing.T) {
	r := Roam{Edge: "away", Every: 2}
	tests := []struct {
		r    Roam
		w    int
		want string
	}{
		{Roam{}, 0, "home"},
		{Roam{}, 5, "home"},
		{Roam{Edge: "away"}, 3, "home"}, // no period: stays
		{r, 0, "home"},
		{r, 1, "home"},
		{r, 2, "away"},
		{r, 3, "away"},
		{r, 4, "home"},
		{r, 7, "away"},
		{Roam{Edge: "away", Every: 1}, 1, "away"},
		{Roam{Edge: "away", Every: 1}, 2, "home"},
	}
	for _, tt := range tests {
		if got := edgeFor("home", tt.r, tt.w); got != tt.want {
			t.Errorf("%+v workflow %d: %s, want %s", tt.r, tt.w, got, tt.want)
		}
	}
	for n := 0; n < 9; n++ {
		if e := RoamEvery(n); e < 2 || e > 4 {
			t.Errorf("RoamEvery(%d) = %d, want 2 to 4", n, e)
		}
	}
}

// A roaming client sends Every workflows through one edge, then Every
// through the other, each workflow with its refreshes (and the
// /closestToMe before each) wholly through one edge; its counts are
// counted apart as well as in the totals.
func TestRoamingClientChangesEdge(t *testing.T) {
	var mu sync.Mutex
	var seq []string // edge of each request: "h" or "a", with its path
	handler := func(name string) http.HandlerFunc {
		return func(w http.ResponseWriter, r *http.Request) {
			mu.Lock()
			seq = append(seq, name+" "+r.Method+" "+r.URL.Path)
			mu.Unlock()
			body := map[string]any{}
			switch {
			case r.URL.Path == "/closestToMe":
				body["closestServerId"] = name + "-1"
			case r.URL.Path == "/workflows" && r.Method == http.MethodPost:
				body["id"] = "r.1"
			case strings.HasSuffix(r.URL.Path, "/steps"):
				n, _ := strconv.Atoi(r.URL.Query().Get("expect"))
				body["step"] = n + 1
			}
			w.Header().Set("X-Lab-Server", "h-1")
			_ = json.NewEncoder(w).Encode(body)
		}
	}
	home, away := httptest.NewServer(handler("h")), httptest.NewServer(handler("a"))
	defer home.Close()
	defer away.Close()
	tally := runUntil(t, home.URL, Options{Header: true, Roam: Roam{Edge: away.URL, Every: 2}}, "5 completed workflows",
		func(k Counts) bool { return k.Completed >= 5 })
	mu.Lock()
	defer mu.Unlock()
	// The edge of each workflow, by the order the workflows started; each
	// request between one workflow's start and the next's went to it.
	var edges []string
	cur := ""
	for _, s := range seq {
		e, what, _ := strings.Cut(s, " ")
		if what == "POST /workflows" {
			cur = e
			edges = append(edges, e)
			continue
		}
		if cur != "" && e != cur {
			t.Errorf("%q within a workflow through %s", s, cur)
		}
	}
	if got := strings.Join(edges[:5], ""); got != "hhaah" {
		t.Errorf("edges of the workflows %q, want hhaah", got)
	}
	tally.mu.Lock()
	defer tally.mu.Unlock()
	if tally.Roaming != tally.Counts || tally.Careless != (Counts{}) {
		t.Errorf("roaming counts %+v, careless %+v; totals %+v", tally.Roaming, tally.Careless, tally.Counts)
	}
}
