package stack

import (
	"context"
	"fmt"
	"net"
	"net/netip"

	"github.com/sessionpin/sessionpin/lab/netns"
	"github.com/sessionpin/sessionpin/lab/topo"
)

// TravellerDialer dials from the client namespace of the region of the
// address dialled: a client that talks to another region's edge is in that
// region, as a user who has travelled there is, rather than reaching the
// edge from home across the relay (which would add the round trip between
// the regions and put the client on the far side of a region's cut). An
// address outside the lab's regions is refused.
func (s *Stack) TravellerDialer() func(ctx context.Context, network, addr string) (net.Conn, error) {
	dialers := map[string]func(ctx context.Context, network, addr string) (net.Conn, error){}
	for _, r := range topo.Regions {
		dialers[r] = netns.Dialer(s.ClientNS(r))
	}
	return func(ctx context.Context, network, addr string) (net.Conn, error) {
		ap, err := netip.ParseAddrPort(addr)
		if err != nil {
			return nil, fmt.Errorf("traveller dial %s: %w", addr, err)
		}
		d, ok := dialers[topo.RegionOf(ap.Addr())]
		if !ok {
			return nil, fmt.Errorf("traveller dial %s: not an address of a lab region", addr)
		}
		return d(ctx, network, addr)
	}
}
