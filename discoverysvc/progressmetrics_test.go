package discoverysvc_test

import (
	"strings"
	"testing"

	"github.com/sessionpin/sessionpin/internal/metrictest"
	"github.com/sessionpin/sessionpin/internal/poll"
)

// Each server's lag per origin is on /metrics, in step with the registry:
// as published, unknown marked apart, and gone with the server.
func TestMetricsShowEachServersLag(t *testing.T) {
	f := startFleet(t, fleetOptions{token: testToken})
	body := func(progress string) string {
		return `{"region":"eu-west","url":"http://127.0.0.1:9001","load":0.2,"origin":"eu-db","progress":` + progress + `}`
	}
	if code := f.heartbeat(t, testToken, "eu-1", body(`{"eu-db":{"lag_ms":0},"us-db":{"lag_ms":1200},"ap-db":{"unknown":true}}`)); code != 200 {
		t.Fatalf("register eu-1: %d", code)
	}
	if code := f.heartbeat(t, testToken, "us-1", hbBody("us-east", 9002, 0.1, false)); code != 200 {
		t.Fatalf("register us-1: %d", code)
	}
	lag := func(server, origin string) string {
		return `sessionpin_discovery_server_lag_seconds{origin="` + origin + `",server="` + server + `"}`
	}
	unknown := func(server, origin string) string {
		return `sessionpin_discovery_server_progress_unknown{origin="` + origin + `",server="` + server + `"}`
	}
	f.waitMetric(t, unknown("eu-1", "us-db"), 0)
	f.waitMetric(t, lag("eu-1", "us-db"), 2) // 1.2 s published as the 2 s step
	text := f.scrape(t)
	for series, want := range map[string]float64{
		lag("eu-1", "eu-db"):     0,
		unknown("eu-1", "eu-db"): 0,
		unknown("eu-1", "ap-db"): 1,
	} {
		if got, ok := metrictest.Value(text, series); !ok || got != want {
			t.Errorf("%s = %v (present %v), want %v", series, got, ok, want)
		}
	}
	if _, ok := metrictest.Value(text, lag("eu-1", "ap-db")); ok {
		t.Error("an unknown lag has a lag series")
	}
	for line := range strings.Lines(text) {
		if strings.HasPrefix(line, "sessionpin_discovery_server_") && strings.Contains(line, `server="us-1"`) {
			t.Errorf("a server with no progress source has a progress series: %s", line)
		}
	}

	// Unknown and known again follow the registry.
	f.heartbeat(t, testToken, "eu-1", body(`{"eu-db":{"lag_ms":0},"us-db":{"unknown":true}}`))
	f.waitMetric(t, unknown("eu-1", "us-db"), 1)
	poll.True(t, fleetWait, "the unknown lag's series gone, and the dropped origin's", func() bool {
		text := f.scrape(t)
		_, us := metrictest.Value(text, lag("eu-1", "us-db"))
		_, ap := metrictest.Value(text, unknown("eu-1", "ap-db"))
		return !us && !ap
	})

	// A server that goes takes its series along.
	deleteServer(t, f.client, "eu-1")
	poll.True(t, fleetWait, "eu-1's progress series gone", func() bool {
		return !strings.Contains(f.scrape(t), `server="eu-1"`)
	})
}
