package stack

import (
	"bufio"
	"fmt"
	"os"
	"strings"
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
