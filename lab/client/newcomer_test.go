package client

import (
	"context"
	"net"
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sessionpin/sessionpin/lab/app"
)

// A newcomer logs in without a pin, names the server the edge placed it
// on, carries the pin it got and its own id in every request, works until
// its stay ends, and then leaves.
func TestNewcomer(t *testing.T) {
	var mu sync.Mutex
	var paths, pins, ids []string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		paths = append(paths, r.Method+" "+r.URL.Path)
		pins = append(pins, r.Header.Get(PinHeader))
		ids = append(ids, r.Header.Get(app.ClientHeader))
		mu.Unlock()
		w.Header().Set("X-Lab-Server", "us-east-2")
		switch r.URL.Path {
		case "/auth/login":
			w.Header().Set("X-Session-Server", "us-east-2")
			w.Header().Set(PinHeader, "pin-1")
			w.Write([]byte(`{}`))
		case "/workflows":
			w.Write([]byte(`{"id":"us-east.7"}`))
		default:
			w.Write([]byte(`{"id":"us-east.7","step":0}`))
		}
	}))
	defer srv.Close()
	n := &Newcomer{ID: "newcomer-us-east-1", Edge: srv.URL, Header: true, Stay: 2 * time.Second, Dial: (&net.Dialer{}).DialContext}
	start := time.Now()
	p, ok := n.Run(context.Background())
	if !ok || p.Server != "us-east-2" || p.Error != "" || p.WorkErrors != 0 || p.At.Before(start) {
		t.Fatalf("placement %+v, %v", p, ok)
	}
	if took := time.Since(start); took < 2*time.Second {
		t.Errorf("left after %v, before its stay", took)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(paths) < 3 || paths[0] != "POST /auth/login" || paths[1] != "POST /workflows" || paths[2] != "GET /workflows/us-east.7" {
		t.Fatalf("requests %v", paths)
	}
	for i := range paths {
		if ids[i] != "newcomer-us-east-1" || (i > 0 && pins[i] != "pin-1") || (i == 0 && pins[i] != "") {
			t.Errorf("request %d (%s): id %q, pin %q", i, paths[i], ids[i], pins[i])
		}
	}
}

// A login that fails is a placement nowhere, with its reason; the newcomer
// does no work.
func TestNewcomerRefused(t *testing.T) {
	var calls atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		calls.Add(1)
		w.WriteHeader(503)
		w.Write([]byte(`{"error":"no_server_available"}`))
	}))
	defer srv.Close()
	n := &Newcomer{ID: "n", Edge: srv.URL, Header: true, Stay: time.Minute, Dial: (&net.Dialer{}).DialContext}
	p, ok := n.Run(context.Background())
	if !ok || p.Server != "" || p.Error != "503 no_server_available" || calls.Load() != 1 {
		t.Fatalf("placement %+v, %v after %d requests", p, ok, calls.Load())
	}
}

// Arrivals start at the interval and every placement is reported once the
// newcomer has left; none is left running when Arrivals returns.
func TestArrivals(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("X-Lab-Server", "s")
		w.Write([]byte(`{}`))
	}))
	defer srv.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 1200*time.Millisecond)
	defer cancel()
	var mu sync.Mutex
	var got []Placement
	Arrivals(ctx, 100*time.Millisecond, func(k int) *Newcomer {
		return &Newcomer{ID: "n", Edge: srv.URL, Stay: 150 * time.Millisecond, Dial: (&net.Dialer{}).DialContext}
	}, func(p Placement) {
		mu.Lock()
		got = append(got, p)
		mu.Unlock()
	})
	mu.Lock()
	defer mu.Unlock()
	if len(got) < 5 || len(got) > 13 {
		t.Fatalf("%d placements in 1.2 s at one per 100 ms", len(got))
	}
	for _, p := range got {
		if p.Server != "s" {
			t.Errorf("placement %+v", p)
		}
	}
}
