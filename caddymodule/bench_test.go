package caddymodule

import (
	"cmp"
	"context"
	"net/http"
	"net/url"
	"strconv"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
	"go.uber.org/zap"

	"github.com/sessionpin/sessionpin/caddymodule/pin"
	"github.com/sessionpin/sessionpin/discoverysvc/schema"
	"github.com/sessionpin/sessionpin/discoverysvc/watch"
)

// benchHandler is a provisioned handler over a 1,000-server snapshot.
func benchHandler(b *testing.B, tune ...func(*Handler)) *Handler {
	b.Helper()
	var servers []schema.Server
	for i := range 1000 {
		region := []string{"eu-west", "us-east", "ap-south"}[i%3]
		servers = append(servers, schema.Server{
			ID: "srv-" + strconv.Itoa(i), Region: region, URL: "http://10.0.0." + strconv.Itoa(i%250) + ":8080", Load: float64(i%100) / 100,
			Origin: region,
		})
	}
	h := &Handler{Region: "eu-west", Key: &pin.KeyConfig{Algorithm: "hs256", Secret: secret32}}
	h.logger = zap.NewNop()
	for _, f := range tune {
		f(h)
	}
	if err := h.setup(); err != nil {
		b.Fatal(err)
	}
	h.app = appWith(watch.BuildSnapshot(1, servers, attachTarget))
	return h
}

// appWith is an app whose registry connection holds snap, as if its
// watcher had just listed it.
func appWith(snap *watch.Snapshot) *App {
	rc := &registryConn{}
	rc.snap.Store(snap)
	return &App{registry: rc}
}

// benchRequest is a request as Caddy's server hands it to handlers: with a
// fresh replacer (already holding the server's HTTP provider) and a vars
// table in its context.
func benchRequest(tok string) *http.Request { return benchRequestMethod(http.MethodGet, tok) }

func benchRequestMethod(method, tok string) *http.Request {
	// Built by hand: httptest.NewRequest parses through a 4 KiB bufio
	// reader, and that garbage's GC would be billed to the handler.
	r := &http.Request{Method: method, URL: &url.URL{Path: "/orders/42"}, Header: http.Header{}, Host: "edge.example"}
	if tok != "" {
		r.Header["X-Session-Pin"] = []string{tok}
	}
	repl := caddy.NewReplacer()
	repl.Map(func(string) (any, bool) { return nil, false }) // as addHTTPVarsToReplacer does
	ctx := context.WithValue(context.Background(), caddy.ReplacerCtxKey, repl)
	ctx = context.WithValue(ctx, caddyhttp.VarsCtxKey, map[string]any{"client_ip": "127.0.0.1"})
	return r.WithContext(ctx)
}

// requestBatch hands out fresh requests, rebuilding them in batches with the
// timer stopped, so that per-request Caddy state is not reused across
// iterations and its construction is not measured.
type requestBatch struct {
	b      *testing.B
	method string // "" is GET
	tok    string
	toks   []string // when set, requests take these tokens in turn
	n      int
	reqs   []*http.Request
}

func (rb *requestBatch) next() *http.Request {
	if len(rb.reqs) == 0 {
		rb.b.StopTimer()
		rb.reqs = make([]*http.Request, 1024)
		for i := range rb.reqs {
			tok := rb.tok
			if len(rb.toks) > 0 {
				tok = rb.toks[rb.n%len(rb.toks)]
				rb.n++
			}
			rb.reqs[i] = benchRequestMethod(cmp.Or(rb.method, http.MethodGet), tok)
		}
		rb.b.StartTimer()
	}
	r := rb.reqs[0]
	rb.reqs = rb.reqs[1:]
	return r
}

type discardWriter struct{ h http.Header }

func (d *discardWriter) Header() http.Header         { return d.h }
func (d *discardWriter) Write(b []byte) (int, error) { return len(b), nil }
func (d *discardWriter) WriteHeader(int)             {}

var ok200 = caddyhttp.HandlerFunc(func(w http.ResponseWriter, r *http.Request) error {
	w.WriteHeader(http.StatusOK)
	return nil
})

// BenchmarkHandlerPinnedHS256 is the hot path: a request with a valid HS256
// pin to a live server, its verification in the token cache.
func BenchmarkHandlerPinnedHS256(b *testing.B) {
	h := benchHandler(b)
	tok, err := h.keyring.Issue("srv-7", "us-east", time.Now(), time.Hour)
	if err != nil {
		b.Fatal(err)
	}
	rb := &requestBatch{b: b, tok: tok}
	w := &discardWriter{h: http.Header{}}
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if err := h.ServeHTTP(w, rb.next(), ok200); err != nil {
			b.Fatal(err)
		}
	}
	if got := w.h.Get("X-Session-Server"); got != "srv-7" {
		b.Fatalf("routed to %q", got)
	}
}

// BenchmarkHandlerPinnedWrite is BenchmarkHandlerPinnedHS256 for a write
// (a POST answered 200) to a server that declares its write origin: the
// edge records the write in a new pin, so each write signs one.
func BenchmarkHandlerPinnedWrite(b *testing.B) {
	h := benchHandler(b)
	tok, err := h.keyring.Issue("srv-7", "us-east", time.Now(), time.Hour)
	if err != nil {
		b.Fatal(err)
	}
	rb := &requestBatch{b: b, tok: tok, method: http.MethodPost}
	w := &discardWriter{h: http.Header{}}
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if err := h.ServeHTTP(w, rb.next(), ok200); err != nil {
			b.Fatal(err)
		}
	}
	if got := w.h.Get("X-Session-Server"); got != "srv-7" {
		b.Fatalf("routed to %q", got)
	}
}

// BenchmarkHandlerPinnedMiss is BenchmarkHandlerPinnedHS256 for more
// distinct clients than the verified-token cache holds: every request
// verifies its pin's signature. (A small cache keeps the set-up short.)
func BenchmarkHandlerPinnedMiss(b *testing.B) {
	cache := 4096
	h := benchHandler(b, func(h *Handler) { h.TokenCache = &cache })
	now := time.Now()
	toks := make([]string, 4*cache)
	for i := range toks {
		tok, err := h.keyring.Issue("srv-7", "us-east", now.Add(-time.Duration(i)*time.Second), 48*time.Hour)
		if err != nil {
			b.Fatal(err)
		}
		toks[i] = tok
	}
	rb := &requestBatch{b: b, toks: toks}
	w := &discardWriter{h: http.Header{}}
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if err := h.ServeHTTP(w, rb.next(), ok200); err != nil {
			b.Fatal(err)
		}
	}
	if got := w.h.Get("X-Session-Server"); got != "srv-7" {
		b.Fatalf("routed to %q", got)
	}
}

// BenchmarkHandlerPlacement: a new client, placed and issued a pin.
func BenchmarkHandlerPlacement(b *testing.B) {
	h := benchHandler(b)
	rb := &requestBatch{b: b}
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		w := &discardWriter{h: http.Header{}}
		if err := h.ServeHTTP(w, rb.next(), ok200); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkUpstreamsGet is reverse_proxy's per-request call.
func BenchmarkUpstreamsGet(b *testing.B) {
	h := benchHandler(b)
	tok, _ := h.keyring.Issue("srv-7", "us-east", time.Now(), time.Hour)
	r := benchRequest(tok)
	if err := h.ServeHTTP(&discardWriter{h: http.Header{}}, r, ok200); err != nil {
		b.Fatal(err)
	}
	var u Upstreams
	b.ReportAllocs()
	for b.Loop() {
		ups, _ := u.GetUpstreams(r)
		if len(ups) != 1 {
			b.Fatal("no upstream")
		}
	}
}

// BenchmarkParseRefreshBody reads the refresh inputs from a typical body.
func BenchmarkParseRefreshBody(b *testing.B) {
	body := []byte(`{"userId":"u-123","cart":[1,2,3],"closestServerId":"eu-2","criticalTaskInProgress":true}`)
	b.ReportAllocs()
	for b.Loop() {
		if _, _, _, err := parseRefreshBody(body); err != nil {
			b.Fatal(err)
		}
	}
}
