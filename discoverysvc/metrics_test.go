package discoverysvc_test

import (
	"context"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/sessionpin/sessionpin/internal/metrictest"
)

func TestMetricsFollowRegistrationsAndHeartbeats(t *testing.T) {
	f := startFleet(t, fleetOptions{token: testToken})

	if code := f.heartbeat(t, testToken, "eu-1", hbBody("eu-west", 9001, 0.2, false)); code != 200 {
		t.Fatalf("register eu-1: %d", code)
	}
	if code := f.heartbeat(t, testToken, "eu-2", hbBody("eu-west", 9002, 0.3, false)); code != 200 {
		t.Fatalf("register eu-2: %d", code)
	}
	if code := f.heartbeat(t, testToken, "us-1", hbBody("us-east", 9003, 0.1, false)); code != 200 {
		t.Fatalf("register us-1: %d", code)
	}
	f.waitMetric(t, `sessionpin_discovery_servers{region="eu-west",state="active"}`, 2)
	f.waitMetric(t, `sessionpin_discovery_servers{region="us-east",state="active"}`, 1)

	// A heartbeat that changes nothing renews only; a load move writes; a
	// bad body and a missing token are rejected.
	f.heartbeat(t, testToken, "eu-1", hbBody("eu-west", 9001, 0.2, false))
	f.heartbeat(t, testToken, "eu-1", hbBody("eu-west", 9001, 0.21, false))
	f.heartbeat(t, testToken, "eu-1", hbBody("eu-west", 9001, 0.5, false))
	if code := f.heartbeat(t, testToken, "eu-1", `{"region":"eu-west","url":"ftp://x","load":1}`); code != 400 {
		t.Fatalf("bad url: %d", code)
	}
	if code := f.heartbeat(t, "", "eu-1", hbBody("eu-west", 9001, 0.2, false)); code != 401 {
		t.Fatalf("no token: %d", code)
	}
	text := f.scrape(t)
	for series, want := range map[string]float64{
		`sessionpin_discovery_heartbeats_total{result="written"}`:          4, // three registrations, one move
		`sessionpin_discovery_heartbeats_total{result="renewed"}`:          2,
		`sessionpin_discovery_heartbeats_total{result="rejected"}`:         2,
		`sessionpin_discovery_heartbeats_total{result="failed"}`:           0,
		`sessionpin_discovery_api_requests_total{code="200",method="PUT"}`: 6,
		`sessionpin_discovery_api_requests_total{code="400",method="PUT"}`: 1,
		`sessionpin_discovery_api_requests_total{code="401",method="PUT"}`: 1,
	} {
		if got, ok := metrictest.Value(text, series); !ok || got != want {
			t.Errorf("%s = %v (present %v), want %v", series, got, ok, want)
		}
	}
	for _, call := range []string{"Range", "Txn", "LeaseGrant"} {
		series := `sessionpin_discovery_etcd_request_duration_seconds_count{call="` + call + `"}`
		if got, ok := metrictest.Value(text, series); !ok || got < 1 {
			t.Errorf("%s = %v (present %v), want at least one call timed", series, got, ok)
		}
	}

	// A server that says it is draining, with no edge reporting pinned
	// traffic to it, is drained at once; an operator drain just begun is
	// draining (the quiet period has not passed); a server that leaves is
	// no longer counted.
	f.heartbeat(t, testToken, "eu-2", hbBody("eu-west", 9002, 0.3, true))
	f.waitMetric(t, `sessionpin_discovery_servers{region="eu-west",state="drained"}`, 1)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if _, err := f.reg.Drain(ctx, "eu-1", ""); err != nil {
		t.Fatal(err)
	}
	f.waitMetric(t, `sessionpin_discovery_servers{region="eu-west",state="draining"}`, 1)
	f.waitMetric(t, `sessionpin_discovery_servers{region="eu-west",state="active"}`, 0)
	deleteServer(t, f.client, "us-1")
	f.waitMetric(t, `sessionpin_discovery_servers{region="us-east",state="active"}`, 0)

	// etcd gone: a heartbeat fails.
	f.member.Stop()
	if code := f.heartbeat(t, testToken, "eu-1", hbBody("eu-west", 9001, 0.9, false)); code != 503 {
		t.Fatalf("heartbeat with etcd stopped: %d, want 503", code)
	}
	if got, _ := metrictest.Value(f.scrape(t), `sessionpin_discovery_heartbeats_total{result="failed"}`); got != 1 {
		t.Errorf("failed heartbeats = %v, want 1", got)
	}
}

func TestMetricsMethodLabelIsBounded(t *testing.T) {
	f := startFleet(t, fleetOptions{})
	req, _ := http.NewRequest("BREW", f.srv.URL+"/v1/servers", nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	text := f.scrape(t)
	if strings.Contains(text, `method="BREW"`) {
		t.Fatal("a client's method became a label value")
	}
	if got, _ := metrictest.Value(text, `sessionpin_discovery_api_requests_total{code="405",method="other"}`); got != 1 {
		t.Fatalf("other-method requests = %v, want 1", got)
	}
}
