package stack

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/sessionpin/sessionpin/internal/metrictest"
	"github.com/sessionpin/sessionpin/lab/topo"
)

// Usage is one process's resources.
type Usage struct {
	RSSKB   float64
	FDs     float64
	Threads float64
}

func usage(pid int) (Usage, error) {
	var u Usage
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return u, err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		k, v, _ := strings.Cut(sc.Text(), ":")
		switch k {
		case "VmRSS":
			fmt.Sscan(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), &u.RSSKB)
		case "Threads":
			fmt.Sscan(strings.TrimSpace(v), &u.Threads)
		}
	}
	fds, err := os.ReadDir(fmt.Sprintf("/proc/%d/fd", pid))
	if err == nil {
		u.FDs = float64(len(fds))
	}
	return u, nil
}

// Usage sums the resources of the edges, the discovery replicas and the
// agents, by kind: "edge", "discovery", "agent".
func (s *Stack) Usage() map[string]Usage {
	s.mu.Lock()
	groups := map[string][]int{}
	for _, p := range s.edges {
		if p.Running() {
			groups["edge"] = append(groups["edge"], p.Pid())
		}
	}
	for _, p := range s.disc {
		if p.Running() {
			groups["discovery"] = append(groups["discovery"], p.Pid())
		}
	}
	for _, p := range s.agents {
		if p.Running() {
			groups["agent"] = append(groups["agent"], p.Pid())
		}
	}
	s.mu.Unlock()
	out := map[string]Usage{}
	for k, pids := range groups {
		var sum Usage
		for _, pid := range pids {
			u, err := usage(pid)
			if err != nil {
				continue
			}
			sum.RSSKB += u.RSSKB
			sum.FDs += u.FDs
			sum.Threads += u.Threads
		}
		out[k] = sum
	}
	return out
}

// Goroutines sums go_goroutines from the edges' admin metrics and the
// discovery replicas' /metrics, by kind. The agent has no metrics endpoint;
// its threads and open files stand in.
func (s *Stack) Goroutines(ctx context.Context) map[string]float64 {
	out := map[string]float64{}
	for _, r := range topo.Regions {
		if n, err := s.scrapeGoroutines(ctx, s.Net.NS(topo.EdgeHost(r)), "http://localhost:2019/metrics"); err == nil {
			out["edge"] += n
		}
		if n, err := s.scrapeGoroutines(ctx, s.Net.NS(topo.InfraHost(r)), DiscoveryURL(r)+"/metrics"); err == nil {
			out["discovery"] += n
		}
	}
	return out
}

func (s *Stack) scrapeGoroutines(ctx context.Context, ns, url string) (float64, error) {
	n, found, err := s.scrape(ctx, ns, url, "go_goroutines")
	if err == nil && !found {
		err = fmt.Errorf("%s: no go_goroutines", url)
	}
	return n, err
}

// scrape sums the samples of metric name (every label set) in url's
// Prometheus text, read from namespace ns; found says whether any was
// there.
func (s *Stack) scrape(ctx context.Context, ns, url, name string) (sum float64, found bool, err error) {
	ctx, cancel := context.WithTimeout(ctx, 3*time.Second)
	defer cancel()
	req, err := httpGet(ctx, url)
	if err != nil {
		return 0, false, err
	}
	resp, err := s.HTTP(ns).Do(req)
	if err != nil {
		return 0, false, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 {
		return 0, false, fmt.Errorf("%s: %s", url, resp.Status)
	}
	return metrictest.Sum(resp.Body, name)
}

// EdgeCounter sums counter name over every region's edge (its admin
// endpoint's /metrics). A counter with labels that never counted has no
// sample: 0. An edge that does not answer is an error.
func (s *Stack) EdgeCounter(ctx context.Context, name string) (int, error) {
	var total float64
	for _, r := range topo.Regions {
		n, _, err := s.scrape(ctx, s.Net.NS(topo.EdgeHost(r)), "http://localhost:2019/metrics", name)
		if err != nil {
			return 0, fmt.Errorf("edge %s: %w", r, err)
		}
		total += n
	}
	return int(total), nil
}
