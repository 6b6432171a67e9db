package chaos

import (
	"bytes"
	"compress/gzip"
	"context"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// hostile is the chaos run's attackers, beside its ordinary clients: one
// holds as many events streams open as discovery lets it (and keeps asking
// for more), one bursts concurrent requests at its pinned server through
// an edge, one sends refresh bodies built to hide a field from the edge,
// and one addresses discovery under a rebinding name. None of it may cost
// an ordinary client a wrong server or a 503 for a healthy server; what
// the attackers get back must be the refusals they deserve.
type hostile struct {
	stop context.CancelFunc
	wg   sync.WaitGroup
	http *http.Client
	tr   *http.Transport

	streamsOpen, streamsRefused atomic.Int64
	bursts, burstRequests       atomic.Int64
	refreshRefused              atomic.Int64
	hostRefused                 atomic.Int64

	mu     sync.Mutex
	wrongs []string // answers the attackers should not have had
}

// hostileStreams is how many events streams the stream attacker asks for
// at once: more than discovery admits from one address.
const hostileStreams = 40

func startHostile(t *testing.T, disc, token string, edges []string) *hostile {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	h := &hostile{stop: cancel}
	h.tr = &http.Transport{MaxIdleConnsPerHost: 256, IdleConnTimeout: 2 * time.Second}
	h.http = &http.Client{Transport: h.tr}
	h.wg.Go(func() { h.holdStreams(ctx, disc, token) })
	h.wg.Go(func() { h.burst(ctx, edges[0]) })
	h.wg.Go(func() { h.hideFields(ctx, edges[1]) })
	h.wg.Go(func() { h.rebind(ctx, disc, token) })
	return h
}

// end stops the attackers and closes what they held.
func (h *hostile) end() {
	h.stop()
	h.wg.Wait()
	h.tr.CloseIdleConnections()
}

func (h *hostile) wrong(format string, args ...any) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if len(h.wrongs) < 10 {
		h.wrongs = append(h.wrongs, fmt.Sprintf(format, args...))
	}
}

func sleepCtx(ctx context.Context, d time.Duration) {
	select {
	case <-ctx.Done():
	case <-time.After(d):
	}
}

// holdStreams opens streams until refused, holds what it got, and asks
// again every second; without a token it is refused outright.
func (h *hostile) holdStreams(ctx context.Context, disc, token string) {
	var held []io.Closer
	defer func() {
		for _, c := range held {
			c.Close()
		}
	}()
	for ctx.Err() == nil {
		for len(held) < hostileStreams && ctx.Err() == nil {
			req, _ := http.NewRequestWithContext(ctx, http.MethodGet, disc+"/v1/events", nil)
			req.Header.Set("Authorization", "Bearer "+token)
			resp, err := h.http.Do(req)
			if err != nil {
				break
			}
			if resp.StatusCode == http.StatusOK {
				h.streamsOpen.Add(1)
				held = append(held, resp.Body)
				continue
			}
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode == http.StatusServiceUnavailable && resp.Header.Get("Retry-After") != "" {
				h.streamsRefused.Add(1)
			} else {
				h.wrong("events stream beyond the limit: %d", resp.StatusCode)
			}
			break
		}
		// Without a token: never a stream.
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, disc+"/v1/events", nil)
		if resp, err := h.http.Do(req); err == nil {
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode != http.StatusUnauthorized {
				h.wrong("events stream without a token: %d", resp.StatusCode)
			}
		}
		sleepCtx(ctx, time.Second)
	}
}

// burst sends bursts of concurrent requests with one pin, more than the
// edge keeps idle connections for. Its own answers are whatever its
// server's state gives; only the ordinary clients' are judged.
func (h *hostile) burst(ctx context.Context, edge string) {
	var pin string
	for pin == "" && ctx.Err() == nil {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, edge+"/healthz", nil)
		if resp, err := h.http.Do(req); err == nil {
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			pin = resp.Header.Get("X-Session-Pin")
		}
		if pin == "" {
			sleepCtx(ctx, 200*time.Millisecond)
		}
	}
	for ctx.Err() == nil {
		var wg sync.WaitGroup
		for range 64 {
			wg.Go(func() {
				req, _ := http.NewRequestWithContext(ctx, http.MethodGet, edge+"/healthz", nil)
				req.Header.Set("X-Session-Pin", pin)
				if resp, err := h.http.Do(req); err == nil {
					io.Copy(io.Discard, resp.Body)
					resp.Body.Close()
					h.burstRequests.Add(1)
				}
			})
		}
		wg.Wait()
		h.bursts.Add(1)
		sleepCtx(ctx, 500*time.Millisecond)
	}
}

// hideFields sends refresh bodies whose repeated critical flag hides
// behind a byte-order mark or gzip, and one in a coding the edge does not
// read: each must be refused before it reaches an app.
func (h *hostile) hideFields(ctx context.Context, edge string) {
	twice := `{"criticalTaskInProgress":false,"criticalTaskInProgress":true}`
	var gz bytes.Buffer
	zw := gzip.NewWriter(&gz)
	zw.Write([]byte(twice))
	zw.Close()
	bodies := []struct {
		body, coding string
		want         int
	}{
		{"\xEF\xBB\xBF" + twice, "", http.StatusBadRequest},
		{gz.String(), "gzip", http.StatusBadRequest},
		{twice, "br", http.StatusUnsupportedMediaType},
	}
	for i := 0; ctx.Err() == nil; i++ {
		b := bodies[i%len(bodies)]
		req, _ := http.NewRequestWithContext(ctx, http.MethodPost, edge+"/auth/refresh", strings.NewReader(b.body))
		req.Header.Set("Content-Type", "application/json")
		if b.coding != "" {
			req.Header.Set("Content-Encoding", b.coding)
		}
		resp, err := h.http.Do(req)
		if err == nil {
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode == b.want && resp.Header.Get("X-Session-Server") == "" {
				h.refreshRefused.Add(1)
			} else {
				h.wrong("refresh body %q (%s): %d via %q, want %d before any app", b.body[:8], b.coding, resp.StatusCode, resp.Header.Get("X-Session-Server"), b.want)
			}
		}
		sleepCtx(ctx, 200*time.Millisecond)
	}
}

// rebind reads discovery as a page on another name whose DNS was rebound
// to discovery's address would, token and all.
func (h *hostile) rebind(ctx context.Context, disc, token string) {
	for ctx.Err() == nil {
		for _, path := range []string{"/v1/servers", "/healthz", "/"} {
			req, _ := http.NewRequestWithContext(ctx, http.MethodGet, disc+path, nil)
			req.Host = "attacker.example"
			req.Header.Set("Authorization", "Bearer "+token)
			if resp, err := h.http.Do(req); err == nil {
				io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				if resp.StatusCode == http.StatusMisdirectedRequest {
					h.hostRefused.Add(1)
				} else {
					h.wrong("Host attacker.example %s: %d", path, resp.StatusCode)
				}
			}
		}
		sleepCtx(ctx, time.Second)
	}
}

// report logs what the attackers got and fails the test for anything they
// should not have had, or for a limit that was never reached.
func (h *hostile) report(t *testing.T) {
	t.Helper()
	t.Logf("hostile: streams held %d, refused %d; bursts %d (%d requests); hidden-field refreshes refused %d; rebinding requests refused %d",
		h.streamsOpen.Load(), h.streamsRefused.Load(), h.bursts.Load(), h.burstRequests.Load(), h.refreshRefused.Load(), h.hostRefused.Load())
	fmt.Printf("CHAOS HOSTILE: streams_held=%d streams_refused=%d bursts=%d burst_requests=%d refresh_refused=%d host_refused=%d wrong=%d\n",
		h.streamsOpen.Load(), h.streamsRefused.Load(), h.bursts.Load(), h.burstRequests.Load(), h.refreshRefused.Load(), h.hostRefused.Load(), len(h.wrongs))
	for _, w := range h.wrongs {
		t.Errorf("hostile client: %s", w)
	}
	if h.streamsRefused.Load() == 0 {
		t.Errorf("the stream attacker was never refused: the subscriber limit did not hold")
	}
	if h.refreshRefused.Load() == 0 || h.hostRefused.Load() == 0 || h.bursts.Load() == 0 {
		t.Errorf("an attacker never ran")
	}
}
