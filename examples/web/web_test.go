// Package web holds the browser client of the demo (sessionpin.js, the demo
// page); this test drives the page in headless Chromium, served by a real
// Caddy edge under /demo/.
package web

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/sessionpin/sessionpin/examples/internal/demostack"
	"github.com/sessionpin/sessionpin/internal/poll"
)

const chromiumPath = "/usr/bin/chromium"

const serverChanged = "Your primary server has changed. Any missing data will be synced within 5 minutes."

func TestDemoPage(t *testing.T) {
	if _, err := os.Stat(chromiumPath); err != nil {
		if os.Getenv("CI") != "" {
			t.Fatalf("chromium is required in CI: %v", err)
		}
		t.Skipf("no chromium at %s (apt-get install chromium)", chromiumPath)
	}
	st := demostack.Start(t, demostack.Options{})

	allocCtx, cancelAlloc := browserAllocator(t)
	defer cancelAlloc()
	ctx, cancel := chromedp.NewContext(allocCtx)
	defer cancel()
	p := &page{t: t, ctx: ctx}

	// Every wait below polls the page; this bounds the whole test.
	timer := time.AfterFunc(3*time.Minute, cancel)
	defer timer.Stop()

	p.do(chromedp.Navigate(st.EdgeA + "/demo/?fast=1"))
	p.do(chromedp.WaitVisible("#login"))

	// Login: the edge places and pins the client; the page shows the server.
	p.do(chromedp.Click("#login"))
	first := p.waitServer(func(s string) bool { return s != "–" && s != "" })
	if st.Backends[first].Region != "eu-west" {
		t.Fatalf("login through the eu-west edge placed on %s", first)
	}

	// A workflow step while critical, and a refresh that keeps the server.
	p.do(chromedp.Click("#create-order"))
	p.waitText("#order", "open, 0 items, on "+first)
	p.waitText("#critical", "yes")
	p.do(chromedp.Click("#add-item"))
	p.waitText("#order", "1 items, on "+first)
	p.do(chromedp.Click("#refresh"))
	p.waitText("#log", "POST /auth/refresh (critical: true) → 200 on "+first)
	if msg := p.text("#message"); msg != "" {
		t.Fatalf("a critical refresh changed the server: %q", msg)
	}
	p.do(chromedp.Click("#submit-order"))
	p.waitText("#order", "submitted, 1 items, on "+first)
	p.waitText("#critical", "no")

	// A server change: the pinned server gets busy, so a refresh with no
	// critical task moves the client to its lighter neighbour.
	st.Backends[first].App.SetLoad(0.9)
	st.WaitLoad(t, first, 0.9)
	// The edge picks at random among servers within hysteresis of the least
	// loaded, so one answer naming the other server proves nothing; twenty
	// in a row do.
	poll.Until(t, 30*time.Second, "the edge to see the load", func() error {
		for range 20 {
			if err := closestIsNot(st.EdgeA, first); err != nil {
				return err
			}
		}
		return nil
	})
	p.do(chromedp.Click("#refresh"))
	p.waitText("#message", serverChanged)
	second := p.waitServer(func(s string) bool { return s != first })
	st.Backends[first].App.SetLoad(-1)
	if st.Backends[second].Region != "eu-west" {
		t.Fatalf("moved to %s, want the other eu-west server", second)
	}

	// A reconnect: the pinned server goes down; once the edge refuses the
	// pin, the page counts down, refreshes and retries on a live server.
	st.Backends[second].App.SetDown(true)
	t.Cleanup(func() { st.Backends[second].App.SetDown(false) })
	st.WaitRegistered(t, second, false)
	pin := p.eval(`window.sessionpin.pin`)
	poll.Until(t, 30*time.Second, "the edge to refuse the pin", func() error {
		return pinnedUnavailable(st.EdgeA, pin)
	})
	p.do(chromedp.Evaluate[chromedp.Void](`document.getElementById("message").textContent = ""`))
	p.do(chromedp.Click("#whoami"))
	p.waitText("#log", second+" unavailable (503): reconnecting in 2s")
	third := p.waitServer(func(s string) bool { return s != second })
	p.waitText("#log", "reconnected to "+third)
	p.waitText("#log", "you are alice on "+third)
	p.waitText("#message", serverChanged)
	if r := p.text("#reconnecting"); r != "" {
		t.Fatalf("still showing %q after reconnecting", r)
	}
	if e := p.text("#error"); e != "" {
		t.Fatalf("the page shows an error after reconnecting: %q", e)
	}
}

// page runs chromedp actions and fails the test on error.
type page struct {
	t   *testing.T
	ctx context.Context
}

func (p *page) do(a chromedp.Action[chromedp.Void]) {
	p.t.Helper()
	if _, err := chromedp.Run(p.ctx, a); err != nil {
		p.t.Fatalf("browser: %v\npage log:\n%s", err, p.logText())
	}
}

func (p *page) eval(expr string) string {
	p.t.Helper()
	v, err := chromedp.Run(p.ctx, chromedp.Evaluate[string](expr))
	if err != nil {
		p.t.Fatalf("evaluate %s: %v", expr, err)
	}
	return v
}

func (p *page) text(sel string) string {
	p.t.Helper()
	return p.eval(fmt.Sprintf(`document.querySelector(%q).textContent`, sel))
}

func (p *page) logText() string {
	v, _ := chromedp.Run(p.ctx, chromedp.Evaluate[string](`document.getElementById("log").textContent`))
	return v
}

// waitText waits until the element's text contains want.
func (p *page) waitText(sel, want string) {
	p.t.Helper()
	_, err := chromedp.Run(p.ctx, chromedp.PollFunction[chromedp.Void](
		`(sel, want) => document.querySelector(sel).textContent.includes(want)`,
		chromedp.WithPollingArgs(sel, want), chromedp.WithPollingInterval(50*time.Millisecond),
		chromedp.WithPollingTimeout(60*time.Second)))
	if err != nil {
		p.t.Fatalf("waiting for %s to show %q (shows %q): %v\npage log:\n%s", sel, want, p.text(sel), err, p.logText())
	}
}

// waitServer waits until the pinned server the page shows satisfies ok.
func (p *page) waitServer(ok func(string) bool) string {
	p.t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for {
		s := p.text("#server")
		if ok(s) {
			return s
		}
		if time.Now().After(deadline) {
			p.t.Fatalf("the page shows server %q\npage log:\n%s", s, p.logText())
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func closestIsNot(edge, id string) error {
	resp, err := http.Get(edge + "/closestToMe")
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	var c struct {
		ClosestServerID string `json:"closestServerId"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&c); err != nil {
		return err
	}
	if c.ClosestServerID == id {
		return fmt.Errorf("closest is still %s", id)
	}
	return nil
}

func pinnedUnavailable(edge, pin string) error {
	req, _ := http.NewRequest("GET", edge+"/whoami", nil)
	req.Header.Set("X-Session-Pin", pin)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	var b struct {
		Error string `json:"error"`
	}
	_ = json.NewDecoder(resp.Body).Decode(&b)
	if resp.StatusCode != http.StatusServiceUnavailable || !strings.Contains(b.Error, "pinned_server_unavailable") {
		return fmt.Errorf("edge answers %d %q", resp.StatusCode, b.Error)
	}
	return nil
}

// browserAllocator starts headless Chromium settings shared by the browser
// tests: no network of its own, a fresh profile per test.
func browserAllocator(t *testing.T) (context.Context, context.CancelFunc) {
	return chromedp.NewExecAllocator(context.Background(),
		chromedp.ExecPath(chromiumPath),
		chromedp.Headless,
		chromedp.NoSandbox,
		chromedp.DisableGPU,
		chromedp.NoFirstRun,
		chromedp.Flag("disable-quic", true),
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.Flag("disable-dev-shm-usage", true),
		chromedp.UserDataDir(t.TempDir()),
	)
}
