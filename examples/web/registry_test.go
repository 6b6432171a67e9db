package web

import (
	"context"
	"errors"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/sessionpin/sessionpin/discoverysvc"
	"github.com/sessionpin/sessionpin/discoverysvc/embedetcd"
	"github.com/sessionpin/sessionpin/internal/etcdtest"
)

// TestFleetPageShowsRegistrySizeAndAlarm drives the fleet page in headless
// Chromium against discovery on a real etcd member with a tiny quota: the
// page shows the registry's size, a banner appears when the database is
// full (NOSPACE), and it goes once the alarm is disarmed.
func TestFleetPageShowsRegistrySizeAndAlarm(t *testing.T) {
	ctx := newBrowser(t)
	m := etcdtest.StartWith(t, func(c *embedetcd.Config) {
		c.QuotaBytes = 2 << 20
		c.CompactionRetention = -1
		c.UpkeepInterval = time.Hour // the alarm stays until the test disarms it
	})
	client := etcdtest.NewClient(t, m)
	svc := discoverysvc.New(discoverysvc.Config{Client: client})
	disc := httptest.NewServer(svc.Handler())
	t.Cleanup(disc.Close)
	runCtx, stop := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		svc.Run(runCtx)
	}()
	t.Cleanup(func() { stop(); <-done })

	p := &page{t: t, ctx: ctx}
	p.do(chromedp.Navigate(disc.URL + "/"))
	p.waitJS(`document.getElementById("registry").textContent.startsWith("registry ") &&
		document.getElementById("registry").textContent.includes("of a 2.0 MiB quota")`, "the registry's size")
	if p.eval(`String(document.getElementById("registry-alarm").hidden)`) != "true" {
		t.Fatal("an alarm banner without an alarm")
	}

	ectx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	filler := strings.Repeat("x", 64<<10)
	for i := 0; ; i++ {
		_, err := client.Put(ectx, "/other/filler", filler)
		if errors.Is(err, rpctypes.ErrNoSpace) {
			break
		}
		if err != nil || i > 10_000 {
			t.Fatalf("filling etcd: %v after %d puts", err, i)
		}
	}
	p.waitJS(`!document.getElementById("registry-alarm").hidden &&
		document.getElementById("registry-alarm").textContent.includes("etcd alarm NOSPACE")`, "the NOSPACE banner")
	if got := p.eval(`document.getElementById("registry-alarm").getAttribute("role")`); got != "alert" {
		t.Fatalf("the banner's role is %q, want alert", got)
	}

	if _, err := client.AlarmDisarm(ectx, &clientv3.AlarmMember{}); err != nil {
		t.Fatal(err)
	}
	p.waitJS(`document.getElementById("registry-alarm").hidden`, "the banner to go")
}
