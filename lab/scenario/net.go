package scenario

import (
	"net/netip"

	"github.com/sessionpin/sessionpin/lab/topo"
)

func prefix(h topo.Host) netip.Prefix { return netip.PrefixFrom(h.Addr, 32) }
