package main

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"
)

// The fleet child heartbeats most of the servers from a process of its
// own, so that the discovery process's CPU is the discovery service's
// (API and embedded etcd), as it would be with agents on their own hosts;
// its CPU is reported apart. It starts heartbeating at once and answers:
//
//	status -> "status <heartbeats> <failures> <late> <late max ns> <first error>"
//	reset  -> "ok" after forgetting the lag so far
//
// It stops when its stdin closes.

// fleetConfig is what the parent passes to the fleet child.
type fleetConfig struct {
	api            string
	servers, conns int
	changes        int
	interval, ttl  time.Duration
}

func (c fleetConfig) args() []string {
	return []string{"-fleet", "-api", c.api, "-servers", strconv.Itoa(c.servers), "-conns", strconv.Itoa(c.conns),
		"-changes", strconv.Itoa(c.changes), "-interval", c.interval.String(), "-ttl", c.ttl.String()}
}

// runFleet is the fleet child's main.
func runFleet(c fleetConfig) error {
	_, rest := splitFleet(c.servers, c.changes)
	f := newFleet(c.api, c.servers, c.conns, c.ttl, rest)
	ctx, stop := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); f.heartbeat(ctx, c.interval, c.conns) }()
	defer func() { stop(); <-done }()
	fmt.Println("ready")
	sc := bufio.NewScanner(os.Stdin)
	for sc.Scan() {
		switch sc.Text() {
		case "status":
			fmt.Printf("status %d %d %d %d %s\n", f.heartbeats.Load(), f.failures.Load(), f.late.Load(), f.lateMax.Load(), f.firstError())
		case "reset":
			f.resetLag()
			fmt.Println("ok")
		default:
			fmt.Printf("unknown command %q\n", sc.Text())
		}
	}
	return sc.Err()
}

// fleetProc is the parent's handle on the fleet child.
type fleetProc struct{ *child }

func startFleet(c fleetConfig) (*fleetProc, error) {
	ch, err := startChild("fleet", c.args(), nil)
	if err != nil {
		return nil, err
	}
	return &fleetProc{ch}, nil
}

// fleetStatus is the fleet child's counters.
type fleetStatus struct {
	heartbeats, failures, late int64
	lateMax                    time.Duration
	firstErr                   string
}

func (p *fleetProc) status() (fleetStatus, error) {
	var st fleetStatus
	r, err := p.command(10*time.Second, "status")
	if err != nil {
		return st, err
	}
	var lateMax int64
	n, _ := fmt.Sscanf(r, "status %d %d %d %d", &st.heartbeats, &st.failures, &st.late, &lateMax)
	if n != 4 {
		return st, fmt.Errorf("fleet: status %q", r)
	}
	st.lateMax = time.Duration(lateMax)
	if f := strings.SplitN(r, " ", 6); len(f) == 6 {
		st.firstErr = f[5]
	}
	return st, nil
}

func (p *fleetProc) resetLag() error {
	if r, err := p.command(10*time.Second, "reset"); err != nil || r != "ok" {
		return fmt.Errorf("fleet: reset: %q %v", r, err)
	}
	return nil
}

// fleets is the whole fleet: the parent's part and the child's, if any.
type fleets struct {
	local  *fleet
	remote *fleetProc
}

// status sums both parts' counters.
func (fl *fleets) status() (fleetStatus, error) {
	f := fl.local
	st := fleetStatus{heartbeats: f.heartbeats.Load(), failures: f.failures.Load(), late: f.late.Load(),
		lateMax: time.Duration(f.lateMax.Load()), firstErr: f.firstError()}
	if fl.remote == nil {
		return st, nil
	}
	r, err := fl.remote.status()
	if err != nil {
		return st, err
	}
	st.heartbeats += r.heartbeats
	st.failures += r.failures
	st.late += r.late
	st.lateMax = max(st.lateMax, r.lateMax)
	if st.firstErr == "" {
		st.firstErr = r.firstErr
	}
	return st, nil
}

func (fl *fleets) resetLag() error {
	fl.local.resetLag()
	if fl.remote == nil {
		return nil
	}
	return fl.remote.resetLag()
}
