package chaos

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"os"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/sessionpin/sessionpin/caddymodule"
	"github.com/sessionpin/sessionpin/discoverysvc/agent"
	"github.com/sessionpin/sessionpin/discoverysvc/schema"
	"github.com/sessionpin/sessionpin/internal/etcdtest"
	"github.com/sessionpin/sessionpin/internal/poll"
)

// chaosPlan sizes a chaos run.
type chaosPlan struct {
	clients int           // simulated clients
	rounds  int           // rounds of faults; each round crashes, restarts, stops etcd, reloads
	think   time.Duration // mean pause between a client's requests
}

// Timing of the fleet: the defaults. Stopping an etcd member stalls some
// requests for up to etcd's request timeout (7s), and a healthy server must
// survive that within its 10s lease; the 3s agent interval leaves a loaded
// test machine time to answer health probes (the agent drops a server after
// one probe slower than 3/4 of it). The drain outlasts any one workflow.
const (
	leaseTTL      = schema.DefaultTTL
	agentInterval = agent.DefaultAgentInterval
	drainTimeout  = 5 * time.Second
	// A planned restart first drains the server as an operator does:
	// drain --wait until no edge has seen a pinned request to it for
	// drainQuiet (the edges report every activityInterval), at most
	// drainWait; then the restart, then undrain.
	drainQuiet       = 2 * time.Second
	drainWait        = 30 * time.Second
	activityInterval = 500 * time.Millisecond
	clientRetry      = 200 * time.Millisecond // mean pause between a client's re-pin attempts
	replicationLag   = time.Second
	// repinSlack is what a client's retry adds to the lease TTL between a
	// server's death and the client's new pin: etcd revokes expired leases
	// on a 500ms scan, the revocation reaches the edges through raft and the
	// watch (well under 500ms), and the client waits up to 1.5 × clientRetry
	// and then makes the request, which takes up to a second on a loaded
	// machine running the race detector.
	repinSlack = 500*time.Millisecond + 500*time.Millisecond + 3*clientRetry/2 + time.Second
	// registerTimeout bounds the wait for a server to enter or leave the
	// discovery API's list.
	registerTimeout = 30 * time.Second
	// drainingSeenTimeout bounds the wait for the watch to deliver a
	// planned restart's draining write.
	drainingSeenTimeout = 5 * time.Second
	// agentExitTimeout bounds a planned stop: the drain, then the exit.
	agentExitTimeout = drainTimeout + 10*time.Second
	// settleTimeout bounds the wait for goroutines to return to their
	// baseline after the clients stop.
	settleTimeout = 20 * time.Second
	// unreachableFor is the edges' unreachable_for (their default): how
	// long a server they failed to connect to stays out of their routing.
	// A client of a server cut off from the edges learns it at its next
	// request, which fails to connect or finds the server marked; it is
	// re-pinned by its next refresh, within unreachableFor + cutRepinSlack.
	unreachableFor = caddymodule.DefaultUnreachableFor
	cutRepinSlack  = 3*clientRetry/2 + time.Second
	// cutFor is how long a cut lasts: every client pinned there makes a
	// request and re-pins well within it.
	cutFor = 3 * time.Second
)

// chaosLayout is three regions of two servers each.
var chaosLayout = [][2]string{
	{"eu-1", "eu-west"}, {"eu-2", "eu-west"},
	{"us-1", "us-east"}, {"us-2", "us-east"},
	{"ap-1", "ap-south"}, {"ap-2", "ap-south"},
}

// TestChaos runs simulated clients through two edges while servers crash and
// restart (planned, with drain, and unplanned), a server is cut off from the
// edges while it keeps heartbeating, an etcd member stops and an edge
// reloads its config, and checks that no workflow step ever lands on a
// server other than the one holding its workflow, and that no client gets
// a 5xx for a healthy server, while hostile clients attack beside them. SESSIONPIN_CHAOS=long (make
// chaos) runs more clients for more rounds.
func TestChaos(t *testing.T) {
	plan := chaosPlan{clients: 200, rounds: 1, think: 400 * time.Millisecond}
	if os.Getenv("SESSIONPIN_CHAOS") == "long" {
		plan = chaosPlan{clients: 400, rounds: 6, think: 400 * time.Millisecond}
	}
	const token = chaosDiscoveryToken

	members := etcdtest.StartCluster(t, 3)
	endpoints := etcdtest.Endpoints(members)
	disc, _ := startDiscovery(t, "discovery", endpoints, "--token", token, "--allow-loopback")

	backends := newBackends(t, chaosLayout, replicationLag)
	// The servers that get cut off (one per round) are reached through a
	// proxy the test can cut; their agents probe them directly.
	cutVictim := func(round int) *backend { return backends[(2*round+1)%len(backends)] }
	for round := range min(plan.rounds, len(backends)/2) {
		b := cutVictim(round)
		b.cut = etcdtest.StartCutProxy(t, b.Addr)
	}
	byID := map[string]*backend{}
	agents := map[string]*proc{}
	startServer := func(b *backend) {
		b.start(t)
		agents[b.ID] = startAgent(t, agentConfig{
			ID: b.ID, Region: b.Region, URL: b.public(), HealthURL: b.URL + "/healthz",
			Discovery: disc, Token: token,
			Interval: agentInterval, TTL: leaseTTL, DrainTimeout: drainTimeout,
		})
	}
	for _, b := range backends {
		byID[b.ID] = b
		startServer(b)
	}
	edgeCfg := func(region string) edgeConfig {
		return edgeConfig{Region: region, Etcd: endpoints, App: "activity_interval " + activityInterval.String()}
	}
	edges := []*edge{startEdge(t, "edge-eu", edgeCfg("eu-west")), startEdge(t, "edge-us", edgeCfg("us-east"))}
	for _, b := range backends {
		waitRegistered(t, disc, b.ID, true)
	}
	for _, e := range edges {
		e.waitServers(t, len(backends))
	}

	watchCtx, stopWatch := context.WithCancel(context.Background())
	defer stopWatch()
	tl := watchRegistry(watchCtx, etcdtest.NewClient(t, members...), time.Now())

	baselineGroups := goroutineGroups()
	baseline := ownGoroutines()
	edgeBaseline := make([]int, len(edges))
	for i, e := range edges {
		n, err := e.goroutines()
		if err != nil {
			t.Fatal(err)
		}
		edgeBaseline[i] = n
	}
	fl := newFleet()
	st := newStats() // its clock starts with the clients
	mg := st.margins
	transport := &http.Transport{MaxIdleConnsPerHost: plan.clients, IdleConnTimeout: 5 * time.Second}
	hc := &http.Client{Transport: transport, Timeout: 15 * time.Second}
	edgeURLs := []string{edges[0].URL, edges[1].URL}
	ctx, stopClients := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	for i := range plan.clients {
		c := &client{
			user: fmt.Sprintf("user-%d", i), edges: edgeURLs, http: hc,
			rng: rand.New(rand.NewPCG(uint64(i), 42)), st: st, fleet: fl,
			think: plan.think, retry: clientRetry, closest: i%3 == 0,
		}
		wg.Go(func() { c.run(ctx) })
	}
	// Attackers beside the clients: the limits must hold without costing
	// the clients anything.
	attackers := startHostile(t, disc, token, edgeURLs)
	start := time.Now()
	tl.restart(start)

	// pause lets the clients work between faults.
	pause := func(d time.Duration) { time.Sleep(d) }
	// routedAgain waits until every edge proxies a pin for b again. A
	// server that failed connections is marked unreachable at each edge
	// that saw the failures; the edge tries it again once its mark has run
	// out, and until then a 503 for it is expected.
	routedAgain := func(b *backend) {
		tok := sign(t, jwt.SigningMethodHS256, []byte(pinSecret), claims(b.ID, b.Region))
		for _, e := range edges {
			mg.timed("back or healed -> routed again by each edge", unreachableFor+10*time.Second, func() {
				poll.Until(t, unreachableFor+10*time.Second, b.ID+" routed again by "+e.URL, func() error {
					req, _ := http.NewRequest(http.MethodGet, e.URL+"/healthz", nil)
					req.Header.Set("X-Session-Pin", tok)
					req.Close = true // no idle connection left to count as an edge goroutine
					resp, err := http.DefaultClient.Do(req)
					if err != nil {
						return err
					}
					resp.Body.Close()
					if resp.StatusCode != http.StatusOK {
						return fmt.Errorf("%s", resp.Status)
					}
					return nil
				})
			})
		}
	}
	crash := func(b *backend) {
		t.Logf("%6.1fs crash %s (backend and agent killed)", time.Since(start).Seconds(), b.ID)
		fl.set(b.ID, stateCrashed)
		agents[b.ID].kill()
		b.kill()
		mg.timed("crash -> deregistered (lease expiry)", registerTimeout, func() { waitRegistered(t, disc, b.ID, false) })
		// Leave it dead a moment: clients pinned there must re-pin.
		pause(time.Second)
		startServer(b)
		mg.timed("start -> registered", registerTimeout, func() { waitRegistered(t, disc, b.ID, true) })
		// The edges that failed to connect to it while it was down have it
		// marked unreachable for a while yet.
		routedAgain(b)
		fl.set(b.ID, stateUp)
		t.Logf("%6.1fs %s back", time.Since(start).Seconds(), b.ID)
	}
	plannedRestart := func(b *backend) {
		t.Logf("%6.1fs planned restart of %s (drain --wait, agent SIGTERM, restart, undrain)", time.Since(start).Seconds(), b.ID)
		fl.set(b.ID, statePlanned)
		admin := []string{"SESSIONPIN_DISCOVERY_TOKEN=" + token}
		drain := startProc(t, "drain-"+b.ID, "discoverysvc", admin, "drain", b.ID, "--wait",
			"--quiet", drainQuiet.String(), "--timeout", drainWait.String(), "--discovery", disc)
		if err := drain.wait(drainWait + 10*time.Second); err != nil {
			t.Errorf("drain --wait %s: %v\n%s", b.ID, err, drain.tail(10))
		}
		t.Logf("%6.1fs %s drained", time.Since(start).Seconds(), b.ID)
		drained := tl.drainingPuts(b.ID)
		mg.timed("planned stop -> agent drained and exited", agentExitTimeout, func() {
			if err := agents[b.ID].stop(agentExitTimeout); err != nil {
				t.Errorf("agent %s did not drain and exit: %v", b.ID, err)
			}
		})
		mg.timed("agent exit -> deregistered", registerTimeout, func() { waitRegistered(t, disc, b.ID, false) })
		// The watch may deliver the draining write a moment after the agent
		// exits; it must have happened before the deregistration.
		mg.timed("agent exit -> draining write seen", drainingSeenTimeout, func() {
			poll.Until(t, drainingSeenTimeout, b.ID+" marked draining before it left", func() error {
				if tl.drainingPuts(b.ID) == drained {
					return fmt.Errorf("no draining write seen")
				}
				return nil
			})
		})
		b.kill()
		startServer(b)
		mg.timed("start -> registered", registerTimeout, func() { waitRegistered(t, disc, b.ID, true) })
		undrain := startProc(t, "undrain-"+b.ID, "discoverysvc", admin, "undrain", b.ID, "--discovery", disc)
		if err := undrain.wait(30 * time.Second); err != nil {
			t.Errorf("undrain %s: %v\n%s", b.ID, err, undrain.tail(10))
		}
		fl.set(b.ID, stateUp)
		t.Logf("%6.1fs %s back", time.Since(start).Seconds(), b.ID)
	}
	cutOff := func(b *backend) {
		t.Logf("%6.1fs cut %s off from the edges (its agent keeps heartbeating)", time.Since(start).Seconds(), b.ID)
		fl.set(b.ID, stateCut)
		b.cut.Refuse()
		pause(cutFor)
		b.cut.Heal()
		// Its clients have moved; the edges try it again once their marks
		// have run out.
		routedAgain(b)
		fl.set(b.ID, stateUp)
		t.Logf("%6.1fs %s reachable again", time.Since(start).Seconds(), b.ID)
	}
	stopMember := func(round int) {
		// The short run stops a follower; the long run alternates with the
		// leader, whose loss forces an election under load.
		m := members[0]
		for _, cand := range members {
			srv := cand.Etcd().Server().Server
			isLeader := srv.Leader() == srv.MemberID()
			if isLeader == (round%2 == 1) {
				m = cand
				break
			}
		}
		srv := m.Etcd().Server().Server
		t.Logf("%6.1fs stop etcd member %s (leader=%v)", time.Since(start).Seconds(), m.Name, srv.Leader() == srv.MemberID())
		m.Stop()
		pause(3 * time.Second)
		m.Restart()
		t.Logf("%6.1fs etcd member %s back", time.Since(start).Seconds(), m.Name)
	}
	reload := func(round int) {
		e := edges[round%2]
		cfg := edgeCfg([]string{"eu-west", "us-east"}[round%2])
		// A real change, so Caddy provisions a new handler; the registry
		// settings are the same, so the watch and its snapshot are kept.
		cfg.Handler = fmt.Sprintf("\t\thysteresis 0.%d\n", 1+round%5)
		t.Logf("%6.1fs reload edge %d (hysteresis 0.%d)", time.Since(start).Seconds(), round%2, 1+round%5)
		st.reloadBegun()
		e.reload(t, cfg)
		st.reloadDone()
	}

	pause(2 * time.Second) // warm up: every client pinned and working
	for round := range plan.rounds {
		victim := backends[(2*round)%len(backends)]
		planned := backends[(2*round+3)%len(backends)]
		crash(victim)
		pause(time.Second)
		plannedRestart(planned)
		pause(time.Second)
		cutOff(cutVictim(round))
		pause(time.Second)
		stopMember(round)
		reload(round)
		pause(2 * time.Second)
	}
	stopClients()
	wg.Wait()
	attackers.end()
	elapsed := time.Since(start)
	transport.CloseIdleConnections()

	for _, e := range edges {
		mg.timed("clients stopped -> edge sees the whole fleet", edgeSyncTimeout, func() { e.waitServers(t, len(backends)) })
	}
	stopWatch()
	var leaked int
	mg.timed("clients stopped -> goroutines back to baseline", settleTimeout, func() {
		leaked = waitGoroutines(baseline, edgeBaseline, edges, settleTimeout)
	})

	reasons := formatCounts(st.byReason)
	t.Logf("clients %d, %s of load, %d rounds of faults", plan.clients, elapsed.Round(100*time.Millisecond), plan.rounds)
	t.Logf("workflow steps attempted %d, succeeded %d; workflows completed %d", st.steps.Load(), st.stepsOK.Load(), st.workflows.Load())
	t.Logf("steps landed on another server than their workflow's: %d", st.wrongSrv.Load())
	t.Logf("refreshes %d (critical ones kept on their server: %d; moves: %d)", st.refreshes.Load(), st.critKept.Load(), st.moves.Load())
	t.Logf("workflows lost to crashes %d; to cuts %d; to planned restarts %d; requests failed during planned restarts %d",
		st.lostCrash.Load(), st.lostCut.Load(), st.lostPlan.Load(), st.failPlan.Load())
	t.Logf("5xx by reason: %s", reasons)
	t.Logf("death -> re-pinned: %d clients, worst %s, mean %s (bound: lease TTL %s + client retry %s)",
		st.repinCount.Load(), st.repinWorst.Round(time.Millisecond), meanDuration(st.repinSum, st.repinCount.Load()), leaseTTL, repinSlack)
	t.Logf("cut off -> re-pinned: %d clients, worst %s, mean %s (bound: unreachable_for %s + client retry %s)",
		st.cutRepinCount, st.cutRepinWorst.Round(time.Millisecond), meanDuration(st.cutRepinSum, st.cutRepinCount), unreachableFor, cutRepinSlack)
	t.Logf("connections reset by an edge's config reload: %d (at most one in-flight request per client per reload)", st.reloadResets.Load())
	t.Logf("submits resent after a lost answer, already submitted on their own server: %d", st.resubmits.Load())
	t.Logf("other errors: %d (%s)", st.otherTotal(), formatCounts(st.other))
	for _, d := range st.otherDesc {
		t.Logf("  e.g. %s", d)
	}
	t.Logf("goroutines leaked: %d", leaked)
	if leaked > 0 {
		t.Logf("goroutines grown since the baseline:\n%s", grown(baselineGroups, goroutineGroups()))
	}
	t.Logf("servers removed from the registry: %s", strings.Join(tl.deletes(), "; "))
	t.Logf("timing bounds, each with its worst case and the margin left:")
	for _, line := range mg.lines() {
		t.Logf("  %s", line)
		fmt.Printf("CHAOS MARGIN: %s\n", line)
	}
	fmt.Printf("CHAOS SUMMARY: clients=%d load=%s rounds=%d steps=%d landed_elsewhere=%d workflows=%d lost_crash=%d lost_cut=%d lost_planned=%d failed_planned=%d 5xx={%s} repin_worst=%s repin_bound=%s cut_repin_worst=%s cut_repin_bound=%s reload_resets=%d other_errors=%d goroutines_leaked=%d\n",
		plan.clients, elapsed.Round(100*time.Millisecond), plan.rounds, st.steps.Load(), st.wrongSrv.Load(), st.workflows.Load(),
		st.lostCrash.Load(), st.lostCut.Load(), st.lostPlan.Load(), st.failPlan.Load(), reasons, st.repinWorst.Round(time.Millisecond), leaseTTL+repinSlack,
		st.cutRepinWorst.Round(time.Millisecond), unreachableFor+cutRepinSlack, st.reloadResets.Load(), st.otherTotal(), leaked)

	attackers.report(t)
	if n := st.wrongSrv.Load(); n != 0 {
		t.Errorf("%d workflow steps landed on a server other than their workflow's", n)
	}
	if n := st.otherTotal(); n != 0 {
		t.Errorf("%d other errors", n)
	}
	// A reload can reset the requests in flight at that moment, one per
	// client at most; more means resets went on after the reload.
	if n := st.reloadResets.Load(); n > int64(plan.clients*plan.rounds) {
		t.Errorf("%d connections reset by %d reloads of %d clients", n, plan.rounds, plan.clients)
	}
	if n := st.lostPlan.Load() + st.failPlan.Load(); n != 0 {
		t.Errorf("planned restarts failed %d requests or workflows; drain must move every client first", n)
	}
	if w := st.repinWorst; w > leaseTTL+repinSlack {
		t.Errorf("worst death -> re-pinned %s exceeds lease TTL %s + client retry %s", w, leaseTTL, repinSlack)
	}
	if st.repinCount.Load() == 0 {
		t.Errorf("no client was re-pinned after a crash: the crash did not hit anyone")
	}
	if w := st.cutRepinWorst; w > unreachableFor+cutRepinSlack {
		t.Errorf("worst cut off -> re-pinned %s exceeds unreachable_for %s + client retry %s", w, unreachableFor, cutRepinSlack)
	}
	if st.cutRepinCount == 0 {
		t.Errorf("no client was re-pinned after a cut: the cut did not hit anyone")
	}
	if st.workflows.Load() < int64(plan.clients) {
		t.Errorf("only %d workflows completed for %d clients", st.workflows.Load(), plan.clients)
	}
	if leaked != 0 {
		t.Errorf("%d goroutines leaked", leaked)
	}
}

// chaosDiscoveryToken is the admin token of the chaos run's discovery.
const chaosDiscoveryToken = "chaos-discovery-token"

// waitRegistered polls the discovery API until id is (or is not) listed.
func waitRegistered(t testing.TB, disc, id string, want bool) {
	t.Helper()
	poll.Until(t, registerTimeout, fmt.Sprintf("%s registered=%v", id, want), func() error {
		ids, err := registeredIDs(disc, chaosDiscoveryToken)
		if err != nil {
			return err
		}
		if slices.Contains(ids, id) != want {
			return fmt.Errorf("registered: %v", ids)
		}
		return nil
	})
}

func registeredIDs(disc, token string) ([]string, error) {
	req, err := http.NewRequest(http.MethodGet, disc+"/v1/servers", nil)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, err
	}
	status := resp.StatusCode
	if status != http.StatusOK {
		return nil, fmt.Errorf("list: %d %s", status, b)
	}
	var list struct {
		Servers []schema.Server `json:"servers"`
	}
	if err := json.Unmarshal(b, &list); err != nil {
		return nil, err
	}
	ids := make([]string, len(list.Servers))
	for i, s := range list.Servers {
		ids[i] = s.ID
	}
	return ids, nil
}

// waitGoroutines polls until the test's own goroutines and each edge's are
// back to their baselines, and returns how many more they still have at the
// deadline.
func waitGoroutines(own int, edgeBase []int, edges []*edge, timeout time.Duration) int {
	deadline := time.Now().Add(timeout)
	for {
		extra := max(0, ownGoroutines()-own)
		for i, e := range edges {
			n, err := e.goroutines()
			if err != nil {
				n = edgeBase[i] + 1_000_000 // unreadable counts as leaked until it answers
			}
			extra += max(0, n-edgeBase[i])
		}
		if extra == 0 || time.Now().After(deadline) {
			return extra
		}
		time.Sleep(200 * time.Millisecond)
	}
}

func meanDuration(sum time.Duration, n int64) time.Duration {
	if n == 0 {
		return 0
	}
	return (sum / time.Duration(n)).Round(time.Millisecond)
}
