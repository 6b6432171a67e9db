package netns

import (
	"errors"
	"fmt"
	"net/netip"
	"strconv"
	"sync"

	"github.com/sessionpin/sessionpin/lab/topo"
)

// Network is the lab's namespaces: a router and one namespace per host,
// each host joined to the router by a veth pair. Nothing is forwarded in
// the kernel: the router delivers every connection to the relay.
type Network struct {
	Prefix string // namespace names start with it

	mu      sync.Mutex
	created []string // namespaces, in creation order
	cuts    map[string][]string
}

// NewNetwork returns a network whose namespaces are named prefix-<host>.
func NewNetwork(prefix string) *Network {
	return &Network{Prefix: prefix, cuts: map[string][]string{}}
}

// Router is the router namespace's name.
func (n *Network) Router() string { return n.Prefix + "-router" }

// NS is the namespace name of host h.
func (n *Network) NS(h topo.Host) string { return n.Prefix + "-" + h.Name }

func (n *Network) add(name string) error {
	if err := IP("netns", "add", name); err != nil {
		return err
	}
	n.mu.Lock()
	n.created = append(n.created, name)
	n.mu.Unlock()
	return InNS(name, "ip", "link", "set", "lo", "up")
}

// Up creates the router and the hosts. On error, what was created stays
// for Down to remove.
func (n *Network) Up(hosts []topo.Host) error {
	r := n.Router()
	if err := n.add(r); err != nil {
		return err
	}
	for _, kv := range [][2]string{{"net.ipv4.conf.all.rp_filter", "0"}, {"net.ipv4.conf.default.rp_filter", "0"}, {"net.ipv4.ip_forward", "1"},
		// The router owns every lab address, so a host's packets carry a
		// source the router calls local: accept them.
		{"net.ipv4.conf.all.accept_local", "1"}, {"net.ipv4.conf.default.accept_local", "1"}} {
		if err := InNS(r, "sysctl", "-qw", kv[0]+"="+kv[1]); err != nil {
			return err
		}
	}
	// Every lab address is local to the router, so a connection a host
	// opens to another region is accepted by the relay whatever address
	// it was sent to. Packets the router itself sends to a lab address
	// (the relay's own connections, and its replies) go out by the main
	// table, and so does traffic within a region, which the kernel
	// forwards: no distance, and a stopped process answers with a reset
	// as on a real host. The local table's rule moves behind these.
	steps := [][]string{
		{"-n", r, "rule", "add", "pref", "1000", "lookup", "local"},
		{"-n", r, "rule", "del", "pref", "0"},
		{"-n", r, "route", "add", "local", topo.HostNet.String(), "dev", "lo", "table", "local"},
		{"-n", r, "rule", "add", "pref", "5", "iif", "lo", "to", topo.HostNet.String(), "lookup", "main"},
	}
	for _, reg := range topo.Regions {
		p := topo.RegionPrefix(reg).String()
		steps = append(steps, []string{"-n", r, "rule", "add", "pref", "50", "from", p, "to", p, "lookup", "main"})
	}
	for _, s := range steps {
		if err := IP(s...); err != nil {
			return err
		}
	}
	for i, h := range hosts {
		ns := n.NS(h)
		if err := n.add(ns); err != nil {
			return err
		}
		veth := "vh" + strconv.Itoa(i)
		steps := [][]string{
			{"-n", r, "link", "add", veth, "type", "veth", "peer", "name", "eth0", "netns", ns},
			{"-n", r, "link", "set", veth, "up"},
			{"-n", r, "addr", "add", topo.RouterAddr.String() + "/32", "dev", veth},
			{"-n", r, "route", "add", h.Addr.String() + "/32", "dev", veth},
			{"-n", ns, "link", "set", "eth0", "up"},
			{"-n", ns, "addr", "add", h.Addr.String() + "/32", "dev", "eth0"},
			{"-n", ns, "route", "add", topo.RouterAddr.String() + "/32", "dev", "eth0"},
			{"-n", ns, "route", "add", "default", "via", topo.RouterAddr.String(), "dev", "eth0"},
		}
		for _, s := range steps {
			if err := IP(s...); err != nil {
				return fmt.Errorf("host %s: %w", h.Name, err)
			}
		}
	}
	return nil
}

// Cut drops every packet between the two address ranges, both ways, in the
// router's kernel (a blackhole rule): new connections time out as across a
// real partition, and open ones stall. name identifies the cut for Heal.
func (n *Network) Cut(name string, a, b netip.Prefix) error {
	n.mu.Lock()
	defer n.mu.Unlock()
	if _, ok := n.cuts[name]; ok {
		return fmt.Errorf("cut %s is already in place", name)
	}
	var rules [][]string
	for _, p := range [][2]netip.Prefix{{a, b}, {b, a}} {
		rule := []string{"from", p[0].String(), "to", p[1].String(), "blackhole", "pref", "2"}
		if err := IP(append([]string{"-n", n.Router(), "rule", "add"}, rule...)...); err != nil {
			for _, done := range rules {
				_ = IP(append([]string{"-n", n.Router(), "rule", "del"}, done...)...)
			}
			return err
		}
		rules = append(rules, rule)
	}
	var flat []string
	for _, r := range rules {
		flat = append(flat, joinRule(r))
	}
	n.cuts[name] = flat
	return nil
}

// Heal removes cut name.
func (n *Network) Heal(name string) error {
	n.mu.Lock()
	defer n.mu.Unlock()
	var errs []error
	for _, r := range n.cuts[name] {
		errs = append(errs, IP(append([]string{"-n", n.Router(), "rule", "del"}, splitRule(r)...)...))
	}
	delete(n.cuts, name)
	return errors.Join(errs...)
}

// Down removes every namespace this network created (their veths go with
// them), newest first.
func (n *Network) Down() error {
	n.mu.Lock()
	created := n.created
	n.created = nil
	n.mu.Unlock()
	var errs []error
	for i := len(created) - 1; i >= 0; i-- {
		if err := IP("netns", "del", created[i]); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}
