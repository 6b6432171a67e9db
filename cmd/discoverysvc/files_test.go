package main

import (
	"syscall"
	"testing"
)

func TestSizeConnections(t *testing.T) {
	tests := []struct {
		name                string
		soft                uint64
		maxConns, maxSubs   int
		wantConns, wantSubs int
		wantErr             bool
	}{
		{"defaults fit a large limit", 1 << 20, 1024, 256, 1024, 256, false},
		{"unlimited keeps what was asked", ^uint64(0), 1024, 256, 1024, 256, false},
		{"a limit of 1024 keeps the reserve", 1024, 1024, 256, 1024 - fileReserve, 256, false},
		{"subscribers leave room for heartbeats", 1024, 1024, 1000, 1024 - fileReserve, 1024 - fileReserve - minConnections/2, false},
		{"no connection limit asked: the budget", 4096, 0, 256, 4096 - fileReserve, 256, false},
		{"too small a limit", fileReserve + minConnections - 1, 1024, 256, 0, 0, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			conns, subs, err := sizeConnections(tt.soft, tt.maxConns, tt.maxSubs)
			if (err != nil) != tt.wantErr {
				t.Fatalf("error %v, want error %v", err, tt.wantErr)
			}
			if err == nil && (conns != tt.wantConns || subs != tt.wantSubs) {
				t.Fatalf("got %d connections, %d subscribers; want %d, %d", conns, subs, tt.wantConns, tt.wantSubs)
			}
			if err == nil && tt.soft < 1<<31 && conns+fileReserve > int(tt.soft) {
				t.Fatalf("%d connections and the reserve exceed the limit %d", conns, tt.soft)
			}
		})
	}
}

// At start the soft open-file limit is raised to the hard limit.
func TestRaiseFileLimit(t *testing.T) {
	soft, _, err := raiseFileLimit()
	if err != nil {
		t.Fatal(err)
	}
	var lim syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		t.Fatal(err)
	}
	if lim.Cur != lim.Max || soft != lim.Cur {
		t.Fatalf("soft %d (reported %d), hard %d: want soft raised to hard", lim.Cur, soft, lim.Max)
	}
}
