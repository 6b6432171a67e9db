package main

import (
	"fmt"
	"syscall"
)

// fileReserve is how many open files the API's connections may never
// take: they stay for the embedded etcd (its WAL, snapshots and database,
// the files it opens to purge and rotate them, its client and peer
// connections), the etcd client, the logs and the process's own. An etcd
// that cannot open a file to purge its WAL exits, and discovery with it.
const fileReserve = 512

// raiseFileLimit raises the soft limit of open files to the hard limit,
// which an unprivileged process may do, and returns the limit in force.
// Many systems start services with a soft limit of 1024 and a hard limit
// far above it.
func raiseFileLimit() (soft uint64, raised bool, err error) {
	var lim syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		return 0, false, fmt.Errorf("read the open-file limit: %w", err)
	}
	if lim.Cur >= lim.Max {
		return lim.Cur, false, nil
	}
	want := lim
	want.Cur = lim.Max
	if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &want); err != nil {
		return lim.Cur, false, fmt.Errorf("raise the open-file limit to %d: %w", lim.Max, err)
	}
	return want.Cur, true, nil
}

// minConnections is the fewest connections discovery serves with: the
// agents' heartbeats and a few operators.
const minConnections = 64

// sizeConnections fits the connection and subscriber limits asked for
// under the open-file limit soft, keeping fileReserve files back. It
// returns the limits to use, and an error when even minConnections do not
// fit. A limit of 0 (none asked) becomes the budget itself.
func sizeConnections(soft uint64, maxConns, maxSubs int) (conns, subs int, err error) {
	budget := maxConns
	if soft < 1<<31 {
		b := int(soft) - fileReserve
		if b < minConnections {
			return 0, 0, fmt.Errorf("the open-file limit %d leaves fewer than %d connections after the %d files kept for etcd; raise it (ulimit -n)", soft, minConnections, fileReserve)
		}
		if budget <= 0 || budget > b {
			budget = b
		}
	}
	subs = maxSubs
	if budget > 0 && (subs <= 0 || subs > budget-minConnections/2) {
		// Subscribers hold connections for good: leave room for the
		// heartbeats.
		subs = max(1, budget-minConnections/2)
	}
	return budget, subs, nil
}
