package schema

import (
	"errors"
	"net/netip"
	"net/url"
	"strings"
)

// checkHost refuses a server URL host that no edge should ever dial: a
// link-local address (cloud metadata services live there), an unspecified,
// multicast or broadcast one, and a number that is not a canonical IP
// literal ("127.1", "0x7f000001", "2130706433"), which some resolvers read
// as an address and would slip past the checks above.
func checkHost(host string) error {
	addr, err := netip.ParseAddr(host)
	if err != nil {
		if endsInNumber(host) {
			return errors.New("host is a number but not a canonical IP address")
		}
		return nil
	}
	addr = addr.Unmap()
	switch {
	case addr.IsLinkLocalUnicast():
		return errors.New("host is a link-local address")
	case addr.IsUnspecified():
		return errors.New("host is the unspecified address")
	case addr.IsMulticast():
		return errors.New("host is a multicast address")
	case addr == netip.AddrFrom4([4]byte{255, 255, 255, 255}):
		return errors.New("host is the broadcast address")
	}
	return nil
}

// IsLoopbackHost reports whether a URL host names this machine: a loopback
// address, or "localhost" and its subdomains, which resolve to one.
func IsLoopbackHost(host string) bool {
	if addr, err := netip.ParseAddr(host); err == nil {
		return addr.Unmap().IsLoopback()
	}
	host = strings.ToLower(strings.TrimSuffix(host, "."))
	return host == "localhost" || strings.HasSuffix(host, ".localhost")
}

// endsInNumber reports whether the last label of a host name is numeric
// (decimal, or hex with 0x), as the URL standard defines it: such a host is
// an IPv4 address in some spelling, never a DNS name.
func endsInNumber(host string) bool {
	host = strings.TrimSuffix(host, ".")
	last := host[strings.LastIndexByte(host, '.')+1:]
	if last == "" {
		return false
	}
	if rest, ok := strings.CutPrefix(strings.ToLower(last), "0x"); ok {
		return strings.Trim(rest, "0123456789abcdef") == ""
	}
	return strings.Trim(last, "0123456789") == ""
}

// IsLoopbackURL reports whether a validated server URL names this machine.
func IsLoopbackURL(raw string) bool {
	u, err := url.Parse(raw)
	return err == nil && IsLoopbackHost(u.Hostname())
}
