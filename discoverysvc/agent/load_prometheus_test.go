package agent_test

import (
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"

	"github.com/sessionpin/sessionpin/discoverysvc/agent"
	"github.com/sessionpin/sessionpin/internal/agenttest"
	"github.com/sessionpin/sessionpin/internal/poll"
)

// metricsApp is a server exposing its load as the gauge app_load, as an
// app that Prometheus already scrapes would.
type metricsApp struct {
	load prometheus.Gauge
	host string // host:port
}

func startMetricsApp(t *testing.T, load float64) *metricsApp {
	t.Helper()
	reg := prometheus.NewRegistry()
	g := prometheus.NewGauge(prometheus.GaugeOpts{Name: "app_load", Help: "The app's load."})
	g.Set(load)
	reg.MustRegister(g)
	srv := httptest.NewServer(promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
	t.Cleanup(srv.Close)
	u, _ := url.Parse(srv.URL)
	return &metricsApp{load: g, host: u.Host}
}

// startPrometheus runs Debian's prometheus scraping each app every second,
// labelling its samples server=<id>, and returns its URL and a stop
// function.
func startPrometheus(t *testing.T, apps map[string]*metricsApp) (string, func()) {
	t.Helper()
	bin, err := exec.LookPath("prometheus")
	if err != nil {
		if os.Getenv("CI") != "" {
			t.Fatal("prometheus is not installed (Debian package prometheus; .ci/run installs it)")
		}
		t.Skip("prometheus is not installed (apt-get install prometheus)")
	}
	dir := t.TempDir()
	var cfg strings.Builder
	cfg.WriteString("global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\nscrape_configs:\n  - job_name: apps\n    static_configs:\n")
	for id, a := range apps {
		fmt.Fprintf(&cfg, "      - targets: [%q]\n        labels: {server: %q}\n", a.host, id)
	}
	if err := os.WriteFile(filepath.Join(dir, "prometheus.yml"), []byte(cfg.String()), 0o600); err != nil {
		t.Fatal(err)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	cmd := exec.Command(bin, "--config.file="+filepath.Join(dir, "prometheus.yml"),
		"--storage.tsdb.path="+filepath.Join(dir, "data"), "--web.listen-address="+addr, "--log.level=warn")
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	stopped := false
	stop := func() {
		if !stopped {
			stopped = true
			_ = cmd.Process.Kill()
			_ = cmd.Wait()
		}
	}
	t.Cleanup(stop)
	base := "http://" + addr
	poll.Until(t, 60*time.Second, "prometheus to answer with a scraped sample", func() error {
		resp, err := http.Get(base + "/api/v1/query?query=app_load")
		if err != nil {
			return err
		}
		defer resp.Body.Close()
		var b [512]byte
		n, _ := resp.Body.Read(b[:])
		if !strings.Contains(string(b[:n]), `"server"`) {
			return fmt.Errorf("no sample yet: %s", b[:n])
		}
		return nil
	})
	return base, stop
}

// The agent reads its server's load from a real Prometheus scraping real
// servers, follows it, keeps the last good load when Prometheus goes away
// (logging that once), and an agent whose Prometheus answers garbage keeps
// its own measure.
func TestAgentLoadFromPrometheus(t *testing.T) {
	apps := map[string]*metricsApp{"us-1": startMetricsApp(t, 0.42), "us-2": startMetricsApp(t, 0.9)}
	promURL, stopProm := startPrometheus(t, apps)
	f := startAPI(t, "")
	health := agenttest.StartApp(t, 200, `{"load":0.05}`)
	core, logs := observer.New(zap.InfoLevel)
	agenttest.Run(t, &agent.Agent{
		ID: "us-1", Region: "us", URL: "https://us1.example.com",
		HealthURL: health.URL + "/healthz", Discovery: f.srv.URL, Interval: agenttest.Interval,
		Prometheus: &agent.PrometheusLoad{URL: promURL, Query: "max by (server) (app_load)"},
		Logger:     zap.New(core),
	})
	storedLoad := func(want float64) func() error {
		return func() error {
			s := agenttest.Stored(t, f.client, "us-1")
			if s == nil || s.Load != want {
				return fmt.Errorf("stored %+v, want load %v", s, want)
			}
			return nil
		}
	}
	poll.Until(t, 30*time.Second, "the load from Prometheus", storedLoad(0.42))
	apps["us-1"].load.Set(0.7)
	poll.Until(t, 30*time.Second, "the new load after a scrape", storedLoad(0.7))

	// Prometheus may have lacked us-1's sample at first, which is logged
	// too: count from here.
	warned := func() int { return logs.FilterMessage("prometheus load unavailable; keeping the last good load").Len() }
	before := warned()
	stopProm()
	poll.True(t, 30*time.Second, "the agent to notice Prometheus is gone", func() bool { return warned() > before })
	// Several more heartbeats: the load stays, and the outage is logged once.
	for probes := health.Hits(); health.Hits() < probes+5; {
		time.Sleep(agenttest.Interval / 2)
	}
	if n := warned() - before; n != 1 {
		t.Errorf("the outage was logged %d times, want once", n)
	}
	if err := storedLoad(0.7)(); err != nil {
		t.Errorf("after Prometheus went away: %v", err)
	}

	garbage := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprint(w, `{"status":"success","data":{"resultType":"vector","result":[{"metric":{"server":"us-2"},"value":[1,"oops"]}]}}`)
	}))
	t.Cleanup(garbage.Close)
	core2, logs2 := observer.New(zap.InfoLevel)
	agenttest.Run(t, &agent.Agent{
		ID: "us-2", Region: "us", URL: "https://us2.example.com",
		HealthURL: health.URL + "/healthz", Discovery: f.srv.URL, Interval: agenttest.Interval,
		Prometheus: &agent.PrometheusLoad{URL: garbage.URL, Query: "app_load"},
		Logger:     zap.New(core2),
	})
	poll.Until(t, 30*time.Second, "us-2 registered with its own measure", func() error {
		s := agenttest.Stored(t, f.client, "us-2")
		if s == nil || s.Load != 0.05 {
			return fmt.Errorf("stored %+v, want the health body's load 0.05", s)
		}
		return nil
	})
	for probes := health.Hits(); health.Hits() < probes+5; {
		time.Sleep(agenttest.Interval / 2)
	}
	if n := logs2.FilterMessage("prometheus load unavailable; keeping the last good load").Len(); n != 1 {
		t.Errorf("garbage was logged %d times, want once", n)
	}
}
