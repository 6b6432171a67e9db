package main

import (
	"context"
	"fmt"
	"os"

	"github.com/sessionpin/sessionpin/bench/internal/benchenv"
)

// setup is what both modes of the program stand on: a work directory, the
// Caddy binary under test, the backends, and an etcd where the backends
// are registered and kept alive by heartbeats.
type setup struct {
	dir  string
	bin  string
	back *backends
	etcd *benchenv.Etcd
	undo []func() // run in reverse by close
}

// newSetup builds Caddy unless o names a binary, then starts the backends
// and etcd and registers the backends. On error it has undone what it did.
func newSetup(ctx context.Context, o options, name string) (s *setup, err error) {
	s = &setup{}
	defer func() {
		if err != nil {
			s.close()
		}
	}()
	root, err := moduleRoot()
	if err != nil {
		return nil, err
	}
	if s.dir, err = os.MkdirTemp("", "sessionpin-bench-"+name+"-"); err != nil {
		return nil, err
	}
	s.undo = append(s.undo, func() { os.RemoveAll(s.dir) })
	if s.bin = o.caddyBin; s.bin == "" {
		fmt.Fprintln(os.Stderr, "building ./cmd/caddy ...")
		if s.bin, err = buildCaddy(root, s.dir); err != nil {
			return nil, err
		}
	}
	if s.back, err = startBackends(4, o.backendProcs); err != nil {
		return nil, err
	}
	s.undo = append(s.undo, s.back.stop)
	if s.etcd, err = benchenv.StartEtcd(); err != nil {
		return nil, err
	}
	s.undo = append(s.undo, func() { s.etcd.Close() })
	stopHeartbeats, err := registerBackends(ctx, s.etcd, s.back.addrs)
	if err != nil {
		return nil, err
	}
	s.undo = append(s.undo, stopHeartbeats)
	return s, nil
}

// close stops what newSetup started, last first.
func (s *setup) close() {
	for i := len(s.undo) - 1; i >= 0; i-- {
		s.undo[i]()
	}
	s.undo = nil
}
