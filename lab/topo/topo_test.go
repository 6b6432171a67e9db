package topo

import (
	"net/netip"
	"testing"
	"time"
)

func TestRegionOf(t *testing.T) {
	tests := []struct {
		addr string
		want string
	}{
		{"198.18.1.1", "us-east"},
		{"198.18.2.12", "eu-west"},
		{"198.18.3.2", "ap-south"},
		{"198.18.4.1", ""},
		{"198.18.0.1", ""},
		{"198.19.0.1", ""},
		{"127.0.0.1", ""},
	}
	for _, tt := range tests {
		if got := RegionOf(netip.MustParseAddr(tt.addr)); got != tt.want {
			t.Errorf("RegionOf(%s) = %q, want %q", tt.addr, got, tt.want)
		}
	}
}

// Every host's address lies in its own region's range, and no two hosts
// share one.
func TestHostsAddresses(t *testing.T) {
	seen := map[netip.Addr]string{}
	for _, h := range Hosts() {
		if RegionOf(h.Addr) != h.Region || !RegionPrefix(h.Region).Contains(h.Addr) {
			t.Errorf("%s: %s outside %s", h.Name, h.Addr, h.Region)
		}
		if o, dup := seen[h.Addr]; dup {
			t.Errorf("%s and %s share %s", h.Name, o, h.Addr)
		}
		seen[h.Addr] = h.Name
	}
	if n := len(Servers()); n != len(Regions)*ServersPerRegion {
		t.Errorf("%d servers", n)
	}
}

func TestRTTs(t *testing.T) {
	r := DefaultRTTs()
	if r.Get("eu-west", "us-east") != 80*time.Millisecond || r.Get("us-east", "eu-west") != 80*time.Millisecond {
		t.Error("a round trip is the same both ways")
	}
	if r.Get("ap-south", "ap-south") != 0 {
		t.Error("no distance within a region")
	}
	if r.Max() != 200*time.Millisecond {
		t.Errorf("max %v", r.Max())
	}
}

func TestServerRegion(t *testing.T) {
	for _, h := range Servers() {
		if got := ServerRegion(h.Name); got != h.Region {
			t.Errorf("%s: region %q, want %q", h.Name, got, h.Region)
		}
	}
	for _, id := range []string{"", "us-east", "us-east-9", "eu-west-edge"} {
		if got := ServerRegion(id); got != "" {
			t.Errorf("%q: region %q, want none", id, got)
		}
	}
}
