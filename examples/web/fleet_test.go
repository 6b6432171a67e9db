package web

import (
	"bytes"
	"context"
	"flag"
	"fmt"
	"image/png"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/sessionpin/sessionpin/examples/internal/demostack"
)

// screenshot makes TestFleetPage write the README's picture of the fleet
// page, docs/fleet.png: go test ./examples/web -run TestFleetPage -screenshot
// Without it the picture goes to a temporary directory, so that `make test`
// leaves the working tree as it was.
var screenshot = flag.Bool("screenshot", false, "write the fleet page screenshot to docs/fleet.png")

// TestFleetPage drives discovery's fleet page in headless Chromium against
// the whole demo stack: every server shows in its region, a new server and a
// drain show up live, without a reload.
func TestFleetPage(t *testing.T) {
	ctx := newBrowser(t)
	const token = "fleet-page-test-admin-token"
	st := demostack.Start(t, demostack.Options{Token: token})
	p := &page{t: t, ctx: ctx}
	// Loads that differ, so the bars say something.
	loads := map[string]float64{"eu-1": 0.62, "eu-2": 0.35, "us-1": 0.18, "us-2": 0.81}
	for id, load := range loads {
		st.Backends[id].App.SetLoad(load)
		st.WaitLoad(t, id, load)
	}

	p.do(chromedp.EmulateViewport(1280, 760))
	// Reading the fleet takes a token: the page gets it in its fragment,
	// which no request carries, and takes it out of the address bar.
	p.do(chromedp.Navigate(st.Discovery + "/#token=" + token))
	p.waitJS(`document.getElementById("connection").dataset.state === "live"`, "the page to connect")
	if got := p.eval(`location.href`); strings.Contains(got, token) {
		t.Fatalf("the token stayed in the address bar: %s", got)
	}
	for id, b := range st.Backends {
		p.waitJS(fmt.Sprintf(`!!document.querySelector('section[data-region=%q] li[data-server-id=%q]')`, b.Region, id),
			fmt.Sprintf("%s under %s", id, b.Region))
		p.waitJS(fmt.Sprintf(`document.querySelector('li[data-server-id=%q] .load-value').textContent === %q`,
			id, fmt.Sprintf("%.2f", loads[id])), id+"'s load")
	}
	if got := p.eval(`document.querySelector('section[data-region="eu-west"] h2').textContent`); !strings.Contains(got, "eu-west") {
		t.Fatalf("the eu-west group is headed %q", got)
	}

	// Every control can be named by a screen reader.
	if unnamed := p.eval(`[...document.querySelectorAll("button, input, [role=meter]")]
		.filter(e => !(e.getAttribute("aria-label") || e.textContent.trim() || (e.id && document.querySelector("label[for=" + e.id + "]"))))
		.map(e => e.outerHTML).join("\n")`); unnamed != "" {
		t.Fatalf("controls without an accessible name:\n%s", unnamed)
	}

	// A server that joins appears live: the page is not reloaded (the
	// marker set on this document survives).
	p.do(chromedp.Evaluate[chromedp.Void](`window.stillTheSamePage = true`))
	heartbeat(t, st.Discovery, token, "ap-1", `{"region":"ap-south","url":"http://127.0.0.1:9005","load":0.4,"ttl":120,`+
		`"capacity":2000,"limit":0.9,`+
		`"origin":"ap-db","progress":{"ap-db":{"lag_ms":0},"eu-db":{"lag_ms":1500},"us-db":{"unknown":true}}}`)
	p.waitJS(`!!document.querySelector('section[data-region="ap-south"] li[data-server-id="ap-1"]')`, "ap-1 to appear under ap-south")

	// Its declared size, and that it joined while the page watched: in
	// slow start at the edges, counting down. Servers that were there
	// when the page connected count as established and declare nothing.
	p.waitJS(`document.querySelector('li[data-server-id="ap-1"] .size')?.dataset.slowStart === "true"`, "ap-1 in slow start")
	if got := p.eval(`document.querySelector('li[data-server-id="ap-1"] .size').textContent`); !strings.HasPrefix(got, "capacity 2000 · limit 0.90 · slow start: ramping up at edges") {
		t.Fatalf("ap-1's size line reads %q", got)
	}
	if got := p.eval(`String(document.querySelector('li[data-server-id="eu-1"] .size').hidden)`); got != "true" {
		t.Fatalf("an established server without a capacity shows a size line (hidden %s)", got)
	}

	// Where its writes commit, and how far behind each origin its data
	// is: as published (1.5 s is the 2 s step), unknown marked apart.
	for sel, want := range map[string]string{
		`li[data-server-id="ap-1"] .progress .origin`:             "writes commit at ap-db",
		`li[data-server-id="ap-1"] .lags li[data-origin="ap-db"]`: "ap-db: caught up",
		`li[data-server-id="ap-1"] .lags li[data-origin="eu-db"]`: "eu-db: 2 s behind",
		`li[data-server-id="ap-1"] .lags li[data-unknown="true"]`: "us-db: unknown",
		`li[data-server-id="ap-1"] .lags li[data-origin="us-db"]`: "us-db: unknown",
	} {
		p.waitJS(fmt.Sprintf(`document.querySelector(%q)?.textContent === %q`, sel, want), sel+" to read "+want)
	}
	if got := p.eval(`String(document.querySelector('li[data-server-id="eu-1"] .progress').hidden)`); got != "true" {
		t.Fatalf("a server with no progress source shows a data line (hidden %s)", got)
	}

	// It announces that it is draining: its state changes in place. No
	// edge has seen pinned traffic to it, so it is drained at once.
	heartbeat(t, st.Discovery, token, "ap-1", `{"region":"ap-south","url":"http://127.0.0.1:9005","load":0.4,"ttl":120,"draining":true}`)
	p.waitJS(`document.querySelector('li[data-server-id="ap-1"]').dataset.state === "drained"`, "ap-1 to show as drained")
	if got := p.eval(`document.querySelector('li[data-server-id="ap-1"] .state').textContent`); got != "drained" {
		t.Fatalf("ap-1's state reads %q", got)
	}

	// A client logs in through the eu-west edge and works on its pinned
	// server: the edge reports the pinned traffic, the page shows it.
	pinned := pinnedTraffic(t, st.EdgeA, 12)
	card := fmt.Sprintf(`li[data-server-id=%q]`, pinned)
	p.waitJS(fmt.Sprintf(`document.querySelector('%s .activity').textContent.startsWith("pinned: 1")`, card),
		pinned+"'s pinned activity")

	// The operator drains that server from the page. No controls without a
	// token; a wrong token is refused, and the page says so; the right one
	// drains, and the card shows the drain waiting for the pinned client.
	if p.eval(fmt.Sprintf(`String(document.querySelector('%s .controls').hidden)`, card)) != "true" {
		t.Fatal("drain controls shown without a token")
	}
	p.do(chromedp.Click("#operator summary"))
	p.do(chromedp.SendKeys("#token", "not-the-token"))
	p.do(chromedp.Click("#token-form button[type=submit]"))
	p.waitJS(fmt.Sprintf(`!document.querySelector('%s .controls').hidden`, card), "the drain controls")
	p.do(chromedp.Click(card + " .drain-button"))
	p.waitJS(`document.getElementById("operator-result").textContent.includes("401")`, "the wrong token to be refused")
	if got := p.eval(fmt.Sprintf(`document.querySelector('%s').dataset.state`, card)); got != "active" {
		t.Fatalf("a refused drain left %s %s", pinned, got)
	}
	p.do(chromedp.SendKeys("#token", token))
	p.do(chromedp.Click("#token-form button[type=submit]"))
	p.do(chromedp.Click(card + " .drain-button"))
	p.waitJS(fmt.Sprintf(`document.querySelector('%s').dataset.state === "draining"`, card), pinned+" to show as draining")
	p.waitJS(fmt.Sprintf(`document.querySelector('%s .drain').textContent.includes("waiting for pinned clients to move")`, card),
		pinned+"'s drain progress")
	if got := p.eval(fmt.Sprintf(`document.querySelector('%s .drain-button').textContent`, card)); got != "Undrain" {
		t.Fatalf("%s's button reads %q once it drains", pinned, got)
	}
	// The token stays in the page's memory: no cookie, no web storage.
	if got := p.eval(`JSON.stringify([document.cookie, localStorage.length, sessionStorage.length])`); got != `["",0,0]` {
		t.Fatalf("the page stored something (cookie, localStorage, sessionStorage): %s", got)
	}
	p.do(chromedp.Click("#operator summary")) // closed again for the picture
	if p.eval(`String(window.stillTheSamePage)`) != "true" {
		t.Fatal("the page reloaded")
	}

	shot := filepath.Join(t.TempDir(), "fleet.png")
	if *screenshot {
		shot = filepath.Join("..", "..", "docs", "fleet.png")
	}
	buf, err := chromedp.Run(ctx, chromedp.CaptureScreenshot())
	if err != nil {
		t.Fatalf("screenshot: %v", err)
	}
	if _, err := png.Decode(bytes.NewReader(buf)); err != nil {
		t.Fatalf("the screenshot is not a PNG: %v", err)
	}
	if err := os.MkdirAll(filepath.Dir(shot), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(shot, buf, 0o644); err != nil {
		t.Fatal(err)
	}
	t.Logf("screenshot: %s", shot)

	// After the picture: Undrain from the page ends the drain, and
	// forgetting the token takes the controls away again.
	p.do(chromedp.Click("#operator summary"))
	p.do(chromedp.Click(card + " .drain-button"))
	p.waitJS(fmt.Sprintf(`document.querySelector('%s').dataset.state === "active"`, card), pinned+" to show as active again")
	if got := p.eval(fmt.Sprintf(`document.querySelector('%s .drain-button').textContent`, card)); got != "Drain" {
		t.Fatalf("%s's button reads %q once undrained", pinned, got)
	}
	p.do(chromedp.Click("#forget-token"))
	p.waitJS(fmt.Sprintf(`document.querySelector('%s .controls').hidden`, card), "the drain controls to go with the token")
}

// newBrowser starts headless Chromium for one test.
func newBrowser(t *testing.T) context.Context {
	t.Helper()
	if _, err := os.Stat(chromiumPath); err != nil {
		if os.Getenv("CI") != "" {
			t.Fatalf("chromium is required in CI: %v", err)
		}
		t.Skipf("no chromium at %s (apt-get install chromium)", chromiumPath)
	}
	allocCtx, cancelAlloc := browserAllocator(t)
	ctx, cancel := chromedp.NewContext(allocCtx)
	// Every wait polls the page; this bounds the whole test.
	timer := time.AfterFunc(3*time.Minute, cancel)
	t.Cleanup(func() {
		timer.Stop()
		cancel()
		cancelAlloc()
	})
	return ctx
}

// waitJS waits until the expression is true in the page.
func (p *page) waitJS(expr, what string) {
	p.t.Helper()
	// Poll, not eval in the page: the page's CSP forbids eval.
	_, err := chromedp.Run(p.ctx, chromedp.Poll[chromedp.Void](expr,
		chromedp.WithPollingInterval(50*time.Millisecond), chromedp.WithPollingTimeout(30*time.Second)))
	if err != nil {
		html, _ := chromedp.Run(p.ctx, chromedp.Evaluate[string](`document.body.innerText`))
		p.t.Fatalf("waiting for %s: %v\npage text:\n%s", what, err, html)
	}
}

// pinnedTraffic logs a client in through edge and sends n pinned requests;
// it returns the server the client is pinned to.
func pinnedTraffic(t *testing.T, edge string, n int) string {
	t.Helper()
	resp, err := http.Post(edge+"/auth/login", "application/json", strings.NewReader(`{"user":"alice"}`))
	if err != nil {
		t.Fatal(err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	pin, server := resp.Header.Get("X-Session-Pin"), resp.Header.Get("X-Session-Server")
	if resp.StatusCode != http.StatusOK || pin == "" || server == "" {
		t.Fatalf("login: %d, pinned to %q", resp.StatusCode, server)
	}
	for range n {
		req, _ := http.NewRequest(http.MethodGet, edge+"/whoami", nil)
		req.Header.Set("X-Session-Pin", pin)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if got := resp.Header.Get("X-Session-Server"); resp.StatusCode != http.StatusOK || got != server {
			t.Fatalf("pinned request: %d from %q, want 200 from %s", resp.StatusCode, got, server)
		}
	}
	return server
}

func heartbeat(t *testing.T, discovery, token, id, body string) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodPut, discovery+"/v1/servers/"+id, strings.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("PUT %s: %d %s", id, resp.StatusCode, b)
	}
}
