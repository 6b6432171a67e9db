// Command lab is the three-region lab: regions in network namespaces with
// distance between them, a three-member etcd cluster across them,
// PostgreSQL with replication lag, and clients in every region, to compare
// round robin, Caddy's cookie policy and sessionpin under faults.
//
//	go run ./lab/cmd/lab [-scenario kill,cut-region] [-modes rr,cookie,sessionpin]
//
// It runs as root (namespaces) and needs iproute2 and PostgreSQL
// (Debian packages iproute2 and postgresql).
package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/sessionpin/sessionpin/lab/etcdmember"
	"github.com/sessionpin/sessionpin/lab/netns"
	"github.com/sessionpin/sessionpin/lab/pg"
	"github.com/sessionpin/sessionpin/lab/results"
	"github.com/sessionpin/sessionpin/lab/scenario"
	"github.com/sessionpin/sessionpin/lab/stack"
)

func main() {
	if len(os.Args) > 1 {
		switch os.Args[1] {
		case "etcd-member":
			exit(runEtcdMember(os.Args[2:]))
		case "app":
			exit(runApp(os.Args[2:]))
		}
	}
	o, err := parseOptions(os.Args[1:], os.Stderr)
	if errors.Is(err, flag.ErrHelp) {
		os.Exit(0)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "lab:", err)
		os.Exit(2)
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM, syscall.SIGHUP)
	defer stop()
	exit(run(ctx, o, os.Args[1:]))
}

func exit(err error) {
	if err != nil {
		fmt.Fprintln(os.Stderr, "lab:", err)
		os.Exit(1)
	}
	os.Exit(0)
}

// etcdTimeouts follows etcd's tuning guide: the heartbeat about the
// longest round trip between members, the election ten heartbeats.
func etcdTimeouts(maxRTT, jitter time.Duration) (heartbeat, election time.Duration) {
	heartbeat = max(100*time.Millisecond, (maxRTT+2*jitter)*5/4).Round(10 * time.Millisecond)
	return heartbeat, 10 * heartbeat
}

func run(ctx context.Context, o options, args []string) (err error) {
	if err := netns.Check(); err != nil {
		return fmt.Errorf("the lab needs network namespaces: %w", err)
	}
	if err := pg.Check(); err != nil {
		return fmt.Errorf("the lab needs PostgreSQL: %w", err)
	}
	root, err := os.Getwd()
	if err != nil {
		return err
	}
	if _, err := os.Stat(filepath.Join(root, "Caddyfile")); err != nil {
		return errors.New("run the lab from the repository's root (make lab): no Caddyfile here")
	}
	self, err := os.Executable()
	if err != nil {
		return err
	}
	b := make([]byte, 3)
	_, _ = rand.Read(b)
	runID := hex.EncodeToString(b)
	// Under /tmp, not $TMPDIR: PostgreSQL runs as its own user and must
	// reach its data directory, which a TMPDIR under a home directory
	// would not let it.
	work, err := os.MkdirTemp("/tmp", "sessionpin-lab-")
	if err != nil {
		return err
	}
	keepLogs := o.logs
	if keepLogs == "" {
		keepLogs = filepath.Join("/tmp", "sessionpin-lab-logs-"+runID)
	}
	defer func() {
		// The logs outlive the run; the data does not.
		_ = os.Rename(filepath.Join(work, "logs"), keepLogs)
		if rerr := os.RemoveAll(work); rerr != nil && err == nil {
			err = rerr
		}
	}()
	fmt.Fprintln(os.Stderr, "lab: building bin/caddy and bin/discoverysvc into", work)
	bins := map[string]string{"caddy": "./cmd/caddy", "discoverysvc": "./cmd/discoverysvc"}
	for name, pkg := range bins {
		cmd := exec.CommandContext(ctx, "go", "build", "-o", filepath.Join(work, "bin", name), pkg)
		cmd.Dir, cmd.Stderr = root, os.Stderr
		if err := cmd.Run(); err != nil {
			return fmt.Errorf("build %s: %w", name, err)
		}
	}
	hb, el := etcdTimeouts(o.rtts().Max(), o.jitter)
	cfg := stack.Config{
		Caddy: filepath.Join(work, "bin", "caddy"), Discovery: filepath.Join(work, "bin", "discoverysvc"), Lab: self,
		Caddyfile: filepath.Join(root, "Caddyfile"), Dir: work, RunID: runID,
		RTTs: o.rtts(), Jitter: o.jitter, Lag: o.lag, LeaseTTL: o.leaseTTL, AgentInterval: time.Second,
		EtcdHeartbeat: hb, EtcdElection: el, Capacity: o.capacity, Limit: o.limit, LimitEdges: o.limitEdges, Log: os.Stderr,
	}
	logf := func(format string, a ...any) { fmt.Fprintf(os.Stderr, "lab: "+format+"\n", a...) }
	logf("run %s: etcd heartbeat %v, election %v; logs will stay in %s", runID, hb, el, keepLogs)
	st, upErr := stack.Up(ctx, cfg)
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("panic: %v", r)
		}
		if st != nil {
			logf("taking the lab down")
			if derr := st.Down(); derr != nil {
				err = errors.Join(err, fmt.Errorf("cleanup: %w", derr))
			}
		}
	}()
	if upErr != nil {
		return upErr
	}
	file := results.File{Command: "lab " + strings.Join(args, " "), Started: time.Now().UTC().Format(time.RFC3339),
		Config: map[string]any{"rtt_ms": map[string]float64{"us-east/eu-west": ms(o.rttUSEU), "eu-west/ap-south": ms(o.rttEUAP), "us-east/ap-south": ms(o.rttUSAP)},
			"jitter_ms": ms(o.jitter), "apply_delay_ms": ms(o.lag), "clients_per_region": o.clients, "scale": o.scale,
			"lease_ttl_s": o.leaseTTL.Seconds(), "agent_interval_s": 1, "etcd_heartbeat_ms": ms(hb), "etcd_election_ms": ms(el),
			"careless_share": o.careless, "roaming_share": o.roam, "capacity": o.capacity, "limit": o.limit, "limit_edges": o.limitEdges,
			"newcomers_per_region_per_second": o.arrivals, "newcomer_stay_s": scenario.NewcomerStay.Seconds(),
			"slow_start_s": scenario.EdgeSlowStart.Seconds(), "hysteresis": scenario.EdgeHysteresis}}
	load := loadAverage()
	begun := time.Now()
	for _, name := range o.scenarios {
		sc, _ := scenario.Find(name)
		for _, mode := range o.modes {
			logf("scenario %s, mode %s: %s", name, mode, sc.What)
			row, err := scenario.Run(ctx, st, sc, mode, scenario.Options{ClientsPerRegion: o.clients, Scale: o.scale, Lag: o.lag, Careless: o.careless, Roam: o.roam, NewcomerRate: o.arrivals, Log: logf})
			if err != nil {
				return err
			}
			file.Runs = append(file.Runs, row)
			results.Table(os.Stderr, []results.Row{row})
			results.RampTable(os.Stderr, row)
		}
	}
	st.StopEdges()
	out, _ := filepath.Abs(o.out)
	if err := results.Write(out, file); err != nil {
		return err
	}
	fmt.Println()
	results.Table(os.Stdout, file.Runs)
	for _, r := range file.Runs {
		results.RampTable(os.Stdout, r)
	}
	fmt.Println("\nresults:", out)
	if o.ramp != "" {
		if ok, err := results.RampChart(o.ramp, file.Runs); err != nil {
			return err
		} else if ok {
			fmt.Println("chart:  ", o.ramp)
		}
	}
	if !o.chartSet && !slices.Equal(o.modes, stack.DefaultModes) && slices.Contains(o.scenarios, "lag-step") {
		// The README shows the default chart: a run of other modes
		// leaves it alone.
		fmt.Printf("chart:   not drawn (the chart in %s compares %s; -chart PATH draws this run's)\n", o.chart, strings.Join(stack.DefaultModes, ", "))
	} else if o.chart != "" {
		if ok, err := results.Chart(o.chart, file.Runs); err != nil {
			return err
		} else if ok {
			fmt.Println("chart:  ", o.chart)
		}
	}
	compared := false
	if o.compare != "" {
		if compared, err = results.CompareChart(o.compare, file.Runs); err != nil {
			return err
		} else if compared {
			fmt.Println("chart:  ", o.compare)
		}
	}
	if pairs := results.Pairs(file.Runs); o.bench != "" && len(pairs) > 0 {
		chart := ""
		if compared {
			chart = o.compare
		}
		text := compareSection(file, pairs, o, root, chart, load, time.Since(begun))
		if err := results.WriteSection(o.bench, compareSectionName, text); err != nil {
			return err
		}
		fmt.Println("section:", o.bench, "("+compareSectionName+")")
	}
	return nil
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

func runEtcdMember(args []string) error {
	var c etcdmember.Config
	fs := flag.NewFlagSet("etcd-member", flag.ContinueOnError)
	fs.StringVar(&c.Name, "name", "", "member name")
	fs.StringVar(&c.Dir, "dir", "", "data dir")
	fs.StringVar(&c.ClientURL, "client-url", "", "client URL")
	fs.StringVar(&c.PeerURL, "peer-url", "", "peer URL")
	fs.StringVar(&c.InitialCluster, "initial-cluster", "", "name=peerURL,...")
	fs.DurationVar(&c.Heartbeat, "heartbeat", 100*time.Millisecond, "heartbeat interval")
	fs.DurationVar(&c.Election, "election", time.Second, "election timeout")
	if err := fs.Parse(args); err != nil {
		return err
	}
	return etcdmember.Run(c)
}
