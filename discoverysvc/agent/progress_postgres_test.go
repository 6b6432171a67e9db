package agent_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/sessionpin/sessionpin/discoverysvc/agent"
	"github.com/sessionpin/sessionpin/discoverysvc/schema"
	"github.com/sessionpin/sessionpin/internal/agenttest"
	"github.com/sessionpin/sessionpin/internal/pgtest"
	"github.com/sessionpin/sessionpin/internal/poll"
)

// The agent's PostgreSQL source against real streaming replication: the
// server's own primary is caught up; the standby's lag is small while it
// replays, grows while its replay is paused and the primary commits, and
// is small again once replay resumes; a stopped standby is unknown, and the
// agent keeps heartbeating. The role the agent connects as holds only
// pg_read_all_stats.
func TestAgentFollowsAPostgreSQLStandby(t *testing.T) {
	pg := pgtest.New(t)
	primary := pg.StartPrimary("us-db")
	standby := pg.StartStandby("us-db-copy", primary)
	primary.Exec(`CREATE ROLE sessionpin_agent LOGIN; GRANT pg_read_all_stats TO sessionpin_agent;
		CREATE ROLE nobody LOGIN; CREATE TABLE writes (at timestamptz DEFAULT clock_timestamp())`)

	f := startAPI(t, testToken)
	app := agenttest.StartApp(t, 200, `{"load":0.1}`)
	own, err := agent.NewPostgresSource("eu-db=" + primary.DSN("sessionpin_agent")) // standing in for the server's own primary
	if err != nil {
		t.Fatal(err)
	}
	copyOfUS, err := agent.NewPostgresSource("us-db=" + standby.DSN("sessionpin_agent"))
	if err != nil {
		t.Fatal(err)
	}
	agenttest.Run(t, &agent.Agent{
		ID: "eu-1", Region: "eu-west", URL: "http://10.1.2.3:9001", Origin: "eu-db",
		HealthURL: app.URL + "/healthz", Discovery: f.srv.URL,
		Token: testToken, Interval: time.Second, // the sources get half of it, ample under -race
		Progress: []agent.ProgressSource{own, copyOfUS},
	})
	stored := func() map[string]schema.Progress {
		t.Helper()
		s := agenttest.Stored(t, f.client, "eu-1")
		if s == nil {
			return nil
		}
		return s.Progress
	}
	usLag := func(ok func(schema.Progress) bool) func() bool {
		return func() bool {
			p := stored()
			return p != nil && p["eu-db"] == (schema.Progress{}) && ok(p["us-db"])
		}
	}
	small := func(p schema.Progress) bool { return !p.Unknown && p.LagMS <= 2000 }
	poll.True(t, 30*time.Second, "eu-db caught up and us-db's copy close behind", usLag(small))
	if s := agenttest.Stored(t, f.client, "eu-1"); s.Origin != "eu-db" {
		t.Fatalf("origin %q, want eu-db", s.Origin)
	}

	// Replay paused while the primary commits: the copy falls behind.
	standby.Exec(`SELECT pg_wal_replay_pause()`)
	ctx, stopWrites := context.WithCancel(context.Background())
	writes := make(chan struct{})
	go func() {
		defer close(writes)
		for ctx.Err() == nil {
			primary.Exec(`INSERT INTO writes DEFAULT VALUES`)
			select {
			case <-ctx.Done():
			case <-time.After(100 * time.Millisecond):
			}
		}
	}()
	t.Cleanup(func() { stopWrites(); <-writes })
	poll.True(t, 30*time.Second, "us-db's lag grown past 4 s while replay is paused", usLag(func(p schema.Progress) bool {
		return !p.Unknown && p.LagMS > 4000
	}))
	behind := stored()["us-db"].LagMS

	// Replay resumed, writes still coming: caught up again.
	standby.Exec(`SELECT pg_wal_replay_resume()`)
	poll.True(t, 30*time.Second, "us-db's lag small again after replay resumed", usLag(small))
	stopWrites()
	<-writes
	t.Logf("us-db's published lag: %d ms while paused, %d ms after", behind, stored()["us-db"].LagMS)

	// The role needs pg_read_all_stats: without it the copy cannot tell.
	plain, err := agent.NewPostgresSource("us-db=" + standby.DSN("nobody"))
	if err != nil {
		t.Fatal(err)
	}
	defer plain.Close(context.Background())
	rctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if got, err := plain.Read(rctx); err == nil || !strings.Contains(err.Error(), "pg_read_all_stats") {
		t.Fatalf("a role without pg_read_all_stats read %v, %v", got, err)
	}

	// The standby stops: its origin is unknown, the primary's still known,
	// and the server stays registered with its load.
	standby.Stop()
	poll.True(t, 30*time.Second, "us-db unknown with its copy stopped", usLag(func(p schema.Progress) bool { return p.Unknown }))
	app.Set(200, `{"load":0.5}`)
	poll.True(t, 20*time.Second, "heartbeats with the copy stopped", func() bool {
		s := agenttest.Stored(t, f.client, "eu-1")
		return s != nil && s.Load == 0.5
	})
}
