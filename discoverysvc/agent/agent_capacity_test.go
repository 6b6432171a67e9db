package agent_test

import (
	"testing"
	"time"

	"github.com/sessionpin/sessionpin/discoverysvc/agent"
	"github.com/sessionpin/sessionpin/internal/agenttest"
	"github.com/sessionpin/sessionpin/internal/poll"
)

// The agent's capacity and limit reach the record in etcd, through the API
// and a real embedded etcd; an agent that declares none writes none.
func TestAgentDeclaresCapacityAndLimit(t *testing.T) {
	f := startAPI(t, "")
	app := agenttest.StartApp(t, 200, `{"load":0.2}`)
	agenttest.Run(t, &agent.Agent{
		ID: "us-1", Region: "us", URL: "https://us1.example.com",
		HealthURL: app.URL + "/healthz", Discovery: f.srv.URL,
		Interval: agenttest.Interval, Capacity: 2500, Limit: 0.85,
	})
	agenttest.Run(t, &agent.Agent{
		ID: "us-2", Region: "us", URL: "https://us2.example.com",
		HealthURL: app.URL + "/healthz", Discovery: f.srv.URL,
		Interval: agenttest.Interval,
	})
	poll.True(t, 20*time.Second, "registration", func() bool {
		return agenttest.Stored(t, f.client, "us-1") != nil && agenttest.Stored(t, f.client, "us-2") != nil
	})
	if s := agenttest.Stored(t, f.client, "us-1"); s.Capacity != 2500 || s.Limit != 0.85 {
		t.Fatalf("stored %+v, want capacity 2500 and limit 0.85", s)
	}
	if s := agenttest.Stored(t, f.client, "us-2"); s.Capacity != 0 || s.Limit != 0 {
		t.Fatalf("stored %+v, want neither capacity nor limit", s)
	}
}
