// Package topo names the lab's regions, hosts and addresses: pure data that
// every other lab package reads.
package topo

import (
	"fmt"
	"net/netip"
	"time"
)

// Regions of the lab, in a fixed order; a region's index decides its
// addresses.
var Regions = []string{"us-east", "eu-west", "ap-south"}

// ServersPerRegion is how many servers of the lab app each region runs.
const ServersPerRegion = 2

// Ports every host uses on its own address. Each host has its own network
// namespace or address, so fixed ports never collide.
const (
	PortEtcdClient = 2379
	PortEtcdPeer   = 2380
	PortDiscovery  = 7070
	PortEdge       = 8080
	PortApp        = 9000
	// PortPGOwn is the region's own primary; PortPGStandbyBase+i the
	// standby of region i's primary.
	PortPGOwn         = 5432
	PortPGStandbyBase = 5440
)

// RelayedPorts are the ports the inter-namespace relay listens on.
func RelayedPorts() []int {
	ports := []int{PortEtcdClient, PortEtcdPeer, PortDiscovery, PortEdge, PortApp, PortPGOwn}
	for i := range Regions {
		ports = append(ports, PortPGStandbyBase+i)
	}
	return ports
}

// RegionIndex returns the index of region r, or -1.
func RegionIndex(r string) int {
	for i, x := range Regions {
		if x == r {
			return i
		}
	}
	return -1
}

// Host is one network namespace of the lab with one address.
type Host struct {
	Name   string // short name, e.g. "us-east" or "us-east-1"
	Region string
	Addr   netip.Addr
	Role   Role
	// Server is the server number (1..ServersPerRegion), 0 for other roles.
	Server int
}

// Role is what a host runs.
type Role string

const (
	// RoleInfra runs the region's etcd member, discovery replica,
	// PostgreSQL instances and clients.
	RoleInfra Role = "infra"
	// RoleEdge runs the region's Caddy edge, on its own address so that
	// a cut between the edge and one server leaves the rest of the region
	// alone.
	RoleEdge Role = "edge"
	// RoleServer runs one server of the lab app and its agent.
	RoleServer Role = "server"
)

// The lab's addresses sit in 198.18.0.0/15, the block set aside for network
// benchmarks: 198.18.<region+1>.<host> for hosts, 198.19.0.1 for the
// router's side of every link.
var (
	HostNet    = netip.MustParsePrefix("198.18.0.0/16")
	RouterAddr = netip.MustParseAddr("198.19.0.1")
)

// InfraHost returns region r's infrastructure host.
func InfraHost(r string) Host {
	i := RegionIndex(r)
	return Host{Name: r, Region: r, Role: RoleInfra, Addr: netip.AddrFrom4([4]byte{198, 18, byte(i + 1), 1})}
}

// EdgeHost returns region r's edge host.
func EdgeHost(r string) Host {
	i := RegionIndex(r)
	return Host{Name: r + "-edge", Region: r, Role: RoleEdge, Addr: netip.AddrFrom4([4]byte{198, 18, byte(i + 1), 2})}
}

// ServerHost returns server n (1-based) of region r.
func ServerHost(r string, n int) Host {
	i := RegionIndex(r)
	return Host{Name: ServerID(r, n), Region: r, Role: RoleServer, Addr: netip.AddrFrom4([4]byte{198, 18, byte(i + 1), byte(10 + n)}), Server: n}
}

// ServerID is the registry id of server n of region r, e.g. "us-east-1".
func ServerID(r string, n int) string { return fmt.Sprintf("%s-%d", r, n) }

// ServerRegion returns the region of the server with registry id id, ""
// for an id that is not a lab server's.
func ServerRegion(id string) string {
	for _, h := range Servers() {
		if h.Name == id {
			return h.Region
		}
	}
	return ""
}

// Hosts returns every host of the lab: per region its infrastructure host,
// then its servers.
func Hosts() []Host {
	var hs []Host
	for _, r := range Regions {
		hs = append(hs, InfraHost(r), EdgeHost(r))
		for n := 1; n <= ServersPerRegion; n++ {
			hs = append(hs, ServerHost(r, n))
		}
	}
	return hs
}

// Servers returns the server hosts only.
func Servers() []Host {
	var hs []Host
	for _, h := range Hosts() {
		if h.Role == RoleServer {
			hs = append(hs, h)
		}
	}
	return hs
}

// RegionOf returns the region an address belongs to, "" outside the lab.
func RegionOf(a netip.Addr) string {
	if !HostNet.Contains(a) {
		return ""
	}
	i := int(a.As4()[2]) - 1
	if i < 0 || i >= len(Regions) {
		return ""
	}
	return Regions[i]
}

// RegionPrefix returns the /24 of region r.
func RegionPrefix(r string) netip.Prefix {
	i := RegionIndex(r)
	return netip.PrefixFrom(netip.AddrFrom4([4]byte{198, 18, byte(i + 1), 0}), 24)
}

// RTTs are the round trips between regions.
type RTTs map[[2]string]time.Duration

// DefaultRTTs: us-east↔eu-west 80 ms, eu-west↔ap-south 120 ms,
// us-east↔ap-south 200 ms.
func DefaultRTTs() RTTs {
	return RTTs{
		{"us-east", "eu-west"}:  80 * time.Millisecond,
		{"eu-west", "ap-south"}: 120 * time.Millisecond,
		{"us-east", "ap-south"}: 200 * time.Millisecond,
	}
}

// Get returns the round trip between a and b (0 within a region).
func (r RTTs) Get(a, b string) time.Duration {
	if a == b {
		return 0
	}
	if d, ok := r[[2]string{a, b}]; ok {
		return d
	}
	return r[[2]string{b, a}]
}

// Max returns the longest round trip.
func (r RTTs) Max() time.Duration {
	var m time.Duration
	for _, d := range r {
		m = max(m, d)
	}
	return m
}
