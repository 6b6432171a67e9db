package discoverysvc_test

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"

	"github.com/sessionpin/sessionpin/discoverysvc"
	"github.com/sessionpin/sessionpin/internal/etcdtest"
	"github.com/sessionpin/sessionpin/internal/metrictest"
	"github.com/sessionpin/sessionpin/internal/poll"
)

// fleetWait bounds waits that depend only on the machine being reasonably
// responsive.
const fleetWait = 20 * time.Second

// fleetFixture is a discovery service with its fleet endpoints in front of
// the API, over a real etcd member, served like `discoverysvc serve` does.
type fleetFixture struct {
	member *etcdtest.Member
	client *clientv3.Client
	reg    *discoverysvc.Registry
	fleet  *discoverysvc.Fleet
	srv    *httptest.Server
}

type fleetOptions struct {
	token  string
	config discoverysvc.Config
	// listener wraps the test server's listener (e.g. to shrink socket
	// buffers).
	listener func(net.Listener) net.Listener
}

func startFleet(t *testing.T, o fleetOptions) *fleetFixture {
	t.Helper()
	m := etcdtest.Start(t)
	metrics := discoverysvc.NewMetrics()
	c, err := clientv3.New(clientv3.Config{
		Endpoints:   []string{m.Client},
		DialTimeout: 5 * time.Second,
		Logger:      zap.NewNop(),
		DialOptions: metrics.EtcdDialOptions(),
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	cfg := o.config
	cfg.Client, cfg.Metrics, cfg.Token, cfg.AllowLoopback = c, metrics, o.token, true
	svc := discoverysvc.New(cfg)
	reg, fleet := svc.Registry(), svc.Fleet()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		svc.Run(ctx)
	}()
	srv := httptest.NewUnstartedServer(svc.Handler())
	if o.listener != nil {
		srv.Listener = o.listener(srv.Listener)
	}
	srv.Start()
	t.Cleanup(func() {
		cancel() // ends the streams first, so Close does not wait for them
		<-done
		srv.Close()
	})
	select {
	case <-fleet.Hub().Ready():
	case <-time.After(20 * time.Second):
		t.Fatal("the fleet never listed the registry")
	}
	return &fleetFixture{member: m, client: c, reg: reg, fleet: fleet, srv: srv}
}

// heartbeat PUTs a heartbeat through the API and returns the status.
func (f *fleetFixture) heartbeat(t *testing.T, token, id, body string) int {
	t.Helper()
	req, _ := http.NewRequest(http.MethodPut, f.srv.URL+"/v1/servers/"+id, strings.NewReader(body))
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.StatusCode
}

func hbBody(region string, port int, load float64, draining bool) string {
	return fmt.Sprintf(`{"region":%q,"url":"http://127.0.0.1:%d","load":%g,"draining":%t}`, region, port, load, draining)
}

// scrape returns the /metrics text.
func (f *fleetFixture) scrape(t *testing.T) string {
	t.Helper()
	resp, err := http.Get(f.srv.URL + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("/metrics: %d %s", resp.StatusCode, b)
	}
	if ct := resp.Header.Get("Content-Type"); !strings.HasPrefix(ct, "text/plain") {
		t.Fatalf("/metrics Content-Type %q, want the Prometheus text format", ct)
	}
	return string(b)
}

// waitMetric polls /metrics until series has the value want.
func (f *fleetFixture) waitMetric(t *testing.T, series string, want float64) {
	t.Helper()
	poll.Until(t, fleetWait, series+" = "+strconv.FormatFloat(want, 'g', -1, 64), func() error {
		got, ok := metrictest.Value(f.scrape(t), series)
		if !ok && want == 0 {
			return nil
		}
		if !ok {
			return fmt.Errorf("%s absent", series)
		}
		if got != want {
			return fmt.Errorf("%s = %g", series, got)
		}
		return nil
	})
}
