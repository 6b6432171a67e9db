package caddymodule

import (
	"encoding/json"
	"net/http"
	"strings"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp/reverseproxy"

	"github.com/sessionpin/sessionpin/caddymodule/placement"
	"github.com/sessionpin/sessionpin/discoverysvc/schema"
	"github.com/sessionpin/sessionpin/discoverysvc/watch"
)

func init() {
	caddy.RegisterModule(Upstreams{})
}

// target is what the request path needs of a server, computed once per
// registry change by the watcher's Attach hook rather than per request.
type target struct {
	id, region, url, dial string
	// origin is where the server's writes commit; "" when it takes no
	// part in data-aware moves.
	origin string
	// Pre-boxed placeholder values, so setting them allocates nothing.
	idValue, regionValue, urlValue any
	// closestJSON is this server's /closestToMe answer.
	closestJSON []byte
	// activity counts the pinned requests proxied to the server; it is
	// the same counter for every target of one server id.
	activity *serverActivity
	// reach is whether this edge can connect to the server; it outlives
	// the target, which is rebuilt on every change of the record.
	reach *reachability
	// report is the load report this target's record was, as counted by
	// activity.placements.
	report placement.Report
}

// attachTarget is the watcher's Attach hook.
func attachTarget(srv schema.Server) any {
	dial, err := schema.DialAddress(srv.URL)
	// A registry value never contains placeholder braces (ValidateURL
	// refuses them), but reverse_proxy would expand any it found in a dial
	// address, so make sure.
	if err != nil || strings.ContainsAny(dial, "{}") {
		return nil
	}
	closest, err := json.Marshal(closestAnswer{srv.ID, srv.Region, srv.URL, srv.Load})
	if err != nil {
		return nil
	}
	return &target{
		id: srv.ID, region: srv.Region, url: srv.URL, dial: dial, origin: srv.Origin,
		idValue: srv.ID, regionValue: srv.Region, urlValue: srv.URL,
		closestJSON: closest,
		// A counter of its own until the registry's tracker hands out the
		// server's shared one.
		activity: new(serverActivity),
		reach:    reachabilities.get(srv.ID, dial),
	}
}

// closestAnswer is the body of a closest_path answer.
type closestAnswer struct {
	ID     string  `json:"closestServerId"`
	Region string  `json:"region"`
	URL    string  `json:"url"`
	Load   float64 `json:"load"`
}

// targetOf returns the entry's precomputed target, or nil when the entry
// cannot be dialled.
func targetOf(e *watch.Entry) *target {
	if e == nil {
		return nil
	}
	t, _ := e.Attachment.(*target)
	return t
}

// Upstreams is the dynamic upstream source `session_pin`: it returns exactly
// the server the session_pin handler chose for this request, and nothing
// when the handler did not run (reverse_proxy then answers 502/503). It
// never dials an address that did not come from the registry.
//
//	reverse_proxy {
//		dynamic session_pin
//	}
//
// Servers whose registry URL is https need the reverse_proxy transport's
// `tls` option (`transport http { tls }`); the dial address is host:port
// and the transport decides the protocol.
type Upstreams struct{}

// CaddyModule returns the Caddy module information.
func (Upstreams) CaddyModule() caddy.ModuleInfo {
	return caddy.ModuleInfo{
		ID:  "http.reverse_proxy.upstreams.session_pin",
		New: func() caddy.Module { return new(Upstreams) },
	}
}

// GetUpstreams returns the server chosen by the session_pin handler.
func (Upstreams) GetUpstreams(r *http.Request) ([]*reverseproxy.Upstream, error) {
	d, ok := caddyhttp.GetVar(r.Context(), decisionVar).(*decision)
	if !ok || d == nil || d.target == nil {
		// An empty list, not an error: an error would make reverse_proxy
		// fall back to static upstreams, which a pinned client must never
		// reach by accident.
		return nil, nil
	}
	return d.upstream(), nil
}

// UnmarshalCaddyfile sets up the source from Caddyfile tokens; it takes no
// arguments:
//
//	dynamic session_pin
func (u *Upstreams) UnmarshalCaddyfile(d *caddyfile.Dispenser) error {
	d.Next() // module name
	if d.NextArg() {
		return d.ArgErr()
	}
	if d.NextBlock(0) {
		return d.Errf("unrecognized subdirective '%s'", d.Val())
	}
	return nil
}

// Interface guards
var (
	_ reverseproxy.UpstreamSource = (*Upstreams)(nil)
	_ caddyfile.Unmarshaler       = (*Upstreams)(nil)
)
