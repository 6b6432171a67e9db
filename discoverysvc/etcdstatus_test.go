package discoverysvc

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"

	"github.com/sessionpin/sessionpin/discoverysvc/embedetcd"
	"github.com/sessionpin/sessionpin/discoverysvc/schema"
	"github.com/sessionpin/sessionpin/internal/etcdtest"
	"github.com/sessionpin/sessionpin/internal/poll"
)

// metricsText renders m as /metrics would.
func metricsText(m *Metrics) string {
	rec := httptest.NewRecorder()
	m.Handler().ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
	b, _ := io.ReadAll(rec.Body)
	return string(b)
}

// gaugeValue finds the sample named series (name{labels} as Prometheus
// writes it) in a scrape.
func gaugeValue(text, series string) (float64, bool) {
	for line := range strings.Lines(text) {
		if rest, ok := strings.CutPrefix(line, series+" "); ok {
			v, err := strconv.ParseFloat(strings.TrimSpace(rest), 64)
			return v, err == nil
		}
	}
	return 0, false
}

// waitGauge polls m until series satisfies ok.
func waitGauge(t *testing.T, m *Metrics, series string, what string, ok func(float64) bool) {
	t.Helper()
	poll.Until(t, waitFor, series+" "+what, func() error {
		v, found := gaugeValue(metricsText(m), series)
		if !found {
			return errors.New("not in /metrics")
		}
		if !ok(v) {
			return fmt.Errorf("is %g", v)
		}
		return nil
	})
}

func runEtcdStatus(t *testing.T, cfg EtcdStatusConfig) *EtcdStatus {
	t.Helper()
	if cfg.Metrics == nil {
		cfg.Metrics = NewMetrics()
	}
	if cfg.Interval == 0 {
		cfg.Interval = 50 * time.Millisecond
	}
	s := NewEtcdStatus(cfg)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		s.Run(ctx)
	}()
	t.Cleanup(func() {
		cancel()
		<-done
	})
	return s
}

// putMany writes n revisions under the registry's prefix.
func putMany(t *testing.T, ctx context.Context, c *clientv3.Client, n int) {
	t.Helper()
	for i := range n {
		if _, err := c.Put(ctx, schema.DefaultPrefix+"test/k", fmt.Sprint(i)); err != nil {
			t.Fatal(err)
		}
	}
}

func TestEtcdStatusPublishesSizeRateAndAlarms(t *testing.T) {
	const quota = 2 << 20
	m := etcdtest.StartWith(t, func(c *embedetcd.Config) {
		c.QuotaBytes = quota
		c.CompactionRetention = -1
		c.UpkeepInterval = time.Hour // the alarm stays up until the test disarms it
	})
	c := etcdtest.NewClient(t, m)
	ctx := testContext(t)
	metrics := NewMetrics()
	s := runEtcdStatus(t, EtcdStatusConfig{Client: c, Metrics: metrics})

	waitGauge(t, metrics, "sessionpin_discovery_etcd_db_size_bytes", "> 0", func(v float64) bool { return v > 0 })
	waitGauge(t, metrics, "sessionpin_discovery_etcd_db_quota_bytes", "= quota", func(v float64) bool { return v == quota })
	waitGauge(t, metrics, `sessionpin_discovery_etcd_alarms{alarm="NOSPACE"}`, "= 0", func(v float64) bool { return v == 0 })
	stop := make(chan struct{})
	writing := make(chan struct{})
	go func() { // a steady trickle of writes for the rate
		defer close(writing)
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			case <-time.After(5 * time.Millisecond):
			}
			c.Put(ctx, schema.DefaultPrefix+"test/rate", fmt.Sprint(i))
		}
	}()
	waitGauge(t, metrics, "sessionpin_discovery_etcd_revisions_per_second", "> 0", func(v float64) bool { return v > 0 })
	close(stop)
	<-writing
	waitGauge(t, metrics, "sessionpin_discovery_etcd_db_size_in_use_bytes", "> 0", func(v float64) bool { return v > 0 })

	value := strings.Repeat("x", 64<<10)
	for i := 0; ; i++ {
		_, err := c.Put(ctx, schema.DefaultPrefix+"test/filler", value)
		if errors.Is(err, rpctypes.ErrNoSpace) {
			break
		}
		if err != nil || i > 10_000 {
			t.Fatalf("filling: %v after %d puts", err, i)
		}
	}
	waitGauge(t, metrics, `sessionpin_discovery_etcd_alarms{alarm="NOSPACE"}`, "= 1", func(v float64) bool { return v == 1 })
	if st := s.State(); !slices.Equal(st.Alarms, []string{"NOSPACE"}) || st.DBSize < quota/2 {
		t.Fatalf("state under NOSPACE: %+v", st)
	}
	// The fleet page reads the same from GET /v1/registry.
	fleet := newFleet(fleetConfig{Client: c, Metrics: NewMetrics(), Etcd: s})
	rec := httptest.NewRecorder()
	req := httptest.NewRequest(http.MethodGet, "/v1/registry", nil)
	req.Host = "127.0.0.1:7070" // the Host check serves loopback names, not httptest's example.com
	fleet.Handler(http.NotFoundHandler()).ServeHTTP(rec, req)
	var got struct {
		DBSize, DBSizeInUse, Quota int64
		Alarms                     []string
	}
	if err := json.Unmarshal(rec.Body.Bytes(), &got); err != nil || rec.Code != http.StatusOK {
		t.Fatalf("GET /v1/registry: %d %s", rec.Code, rec.Body)
	}
	if !strings.Contains(rec.Body.String(), `"db_size":`) || got.Quota != quota || !slices.Equal(got.Alarms, []string{"NOSPACE"}) {
		t.Fatalf("GET /v1/registry under NOSPACE: %s", rec.Body)
	}
	if _, err := c.AlarmDisarm(ctx, &clientv3.AlarmMember{}); err != nil {
		t.Fatal(err)
	}
	waitGauge(t, metrics, `sessionpin_discovery_etcd_alarms{alarm="NOSPACE"}`, "= 0", func(v float64) bool { return v == 0 })
}

// A cluster that keeps its whole history while it grows is warned about
// once, in the log and the metrics, and the warning ends when something
// compacts it.
func TestEtcdStatusWarnsWhenNothingCompacts(t *testing.T) {
	m := etcdtest.StartWith(t, func(c *embedetcd.Config) { c.CompactionRetention = -1 })
	c := etcdtest.NewClient(t, m)
	ctx := testContext(t)
	core, logs := observer.New(zapcore.InfoLevel)
	metrics := NewMetrics()
	s := runEtcdStatus(t, EtcdStatusConfig{Client: c, Metrics: metrics, Logger: zap.New(core), UncompactedAfter: 500 * time.Millisecond})

	// Little history: no warning, however old.
	putMany(t, ctx, c, 10)
	checked := time.Now().Add(time.Second)
	poll.True(t, waitFor, "a look a second later", func() bool { return s.State().At.After(checked) })
	if v, _ := gaugeValue(metricsText(metrics), "sessionpin_discovery_etcd_history_uncompacted"); v != 0 {
		t.Fatal("warned about a history of a few revisions")
	}
	putMany(t, ctx, c, uncompactedMinRevisions)
	waitGauge(t, metrics, "sessionpin_discovery_etcd_history_uncompacted", "= 1", func(v float64) bool { return v == 1 })
	get, err := c.Get(ctx, "any")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.Compact(ctx, get.Header.Revision); err != nil {
		t.Fatal(err)
	}
	waitGauge(t, metrics, "sessionpin_discovery_etcd_history_uncompacted", "= 0", func(v float64) bool { return v == 0 })
	if n := logs.FilterMessageSnippet("etcd keeps its whole history").Len(); n != 1 {
		t.Fatalf("warned %d times, want once", n)
	}
}

// With CompactRetention discovery compacts the cluster itself.
func TestEtcdStatusCompactsWhenTold(t *testing.T) {
	m := etcdtest.StartWith(t, func(c *embedetcd.Config) { c.CompactionRetention = -1 })
	c := etcdtest.NewClient(t, m)
	ctx := testContext(t)
	metrics := NewMetrics()
	runEtcdStatus(t, EtcdStatusConfig{Client: c, Metrics: metrics, CompactRetention: 500 * time.Millisecond})
	first, err := c.Put(ctx, schema.DefaultPrefix+"test/k", "first")
	if err != nil {
		t.Fatal(err)
	}
	poll.Until(t, waitFor, "first revision compacted", func() error {
		putMany(t, ctx, c, 1)
		_, err := c.Get(ctx, schema.DefaultPrefix+"test/k", clientv3.WithRev(first.Header.Revision))
		if errors.Is(err, rpctypes.ErrCompacted) {
			return nil
		}
		return fmt.Errorf("still readable (%v)", err)
	})
}
