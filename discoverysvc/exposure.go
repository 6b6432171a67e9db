package discoverysvc

import (
	"crypto/sha256"
	"crypto/subtle"
	"net"
	"net/http"
	"net/netip"
	"strings"
)

// Exposure is the one rule for what the service shows, and to whom:
//
//   - public: /healthz, /metrics (counts and server ids, never a URL), and
//     the fleet page's own HTML, script and style (which show nothing until
//     the page reads the events stream with a token);
//   - read: GET /v1/events and GET /v1/servers, which name every server's
//     internal URL: the admin token or the read-only token, unless
//     PublicRead;
//   - write: registrations, heartbeats, drains and the drain status, as
//     the API decides (admin or agent tokens).
//
// With no token configured at all the service is open, writes included,
// as before tokens existed; discovery serve warns about it.
//
// Every request must also be addressed (Host) to a name the service
// answers to: an IP address, localhost, the listen address's host, or one
// of Hosts. A page on another name that rebinds its DNS to discovery's
// address therefore cannot read it from an operator's browser.
type Exposure struct {
	// AdminToken is the API's admin token; it reads too.
	AdminToken string
	// ReadToken is a token that reads and writes nothing: for dashboards
	// and the fleet page. Default: none.
	ReadToken string
	// PublicRead opens the read endpoints to anyone who reaches the
	// service, for a private network. Default: false.
	PublicRead bool
	// Listen is the API's listen address; its host is an allowed name.
	Listen string
	// Hosts are more names requests may be addressed to (a DNS name the
	// agents or a load balancer use). Default: none.
	Hosts []string
}

// exposure is an Exposure ready for requests.
type exposure struct {
	open    bool     // reads need no token
	sums    [][]byte // sha256 of the tokens that read
	allowed map[string]bool
}

func (e Exposure) compile() *exposure {
	x := &exposure{allowed: map[string]bool{"localhost": true}}
	for _, t := range []string{e.AdminToken, e.ReadToken} {
		if t != "" {
			sum := sha256.Sum256([]byte(t))
			x.sums = append(x.sums, sum[:])
		}
	}
	x.open = e.PublicRead || len(x.sums) == 0
	if host, _, err := net.SplitHostPort(e.Listen); err == nil && host != "" {
		x.allowed[normalHost(host)] = true
	}
	for _, h := range e.Hosts {
		if h = strings.TrimSpace(h); h != "" {
			if host, _, err := net.SplitHostPort(h); err == nil {
				h = host
			}
			x.allowed[normalHost(h)] = true
		}
	}
	return x
}

// endpointClass is who may use an endpoint, before the API's own checks.
type endpointClass int

const (
	classPublic endpointClass = iota // anyone
	classRead                        // a reading token, unless reads are open
	classAPI                         // the API decides (writes: admin or agent token)
)

func (c endpointClass) String() string {
	return [...]string{"public", "read", "api"}[c]
}

// classifyEndpoint is the rule of Exposure for one request.
func classifyEndpoint(method, path string) endpointClass {
	read := method == http.MethodGet || method == http.MethodHead
	switch {
	case path == "/v1/events":
		return classRead
	case path == "/v1/servers" && read:
		return classRead
	case path == "/healthz", path == "/metrics", path == "/v1/registry", path == "/", strings.HasPrefix(path, "/fleet/"):
		return classPublic
	}
	return classAPI
}

// hostAllowed reports whether a request's Host names this service: empty
// (HTTP/1.0), an IP address (a rebinding page cannot have one as its
// origin), localhost and its subdomains, or an allowed name.
func (x *exposure) hostAllowed(hostport string) bool {
	if hostport == "" {
		return true
	}
	host := hostport
	if h, _, err := net.SplitHostPort(hostport); err == nil {
		host = h
	}
	host = normalHost(host)
	if _, err := netip.ParseAddr(strings.Trim(host, "[]")); err == nil {
		return true
	}
	return x.allowed[host] || host == "localhost" || strings.HasSuffix(host, ".localhost")
}

// canRead reports whether r carries a token that reads.
func (x *exposure) canRead(r *http.Request) bool {
	if x.open {
		return true
	}
	scheme, cred, ok := strings.Cut(r.Header.Get("Authorization"), " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") {
		return false
	}
	sum := sha256.Sum256([]byte(strings.TrimSpace(cred)))
	found := 0
	for _, s := range x.sums {
		found |= subtle.ConstantTimeCompare(sum[:], s)
	}
	return found == 1
}

// guard refuses requests addressed to a name the service does not answer
// to (421) and reads without a reading token (401), then serves next.
func (x *exposure) guard(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !x.hostAllowed(r.Host) {
			writeError(w, http.StatusMisdirectedRequest, "host not served here: add it with --allow-host")
			return
		}
		if classifyEndpoint(r.Method, r.URL.Path) == classRead && !x.canRead(r) {
			w.Header().Set("WWW-Authenticate", `Bearer realm="sessionpin-discovery"`)
			writeError(w, http.StatusUnauthorized, "missing or wrong bearer token: reading the fleet needs the read or admin token")
			return
		}
		next.ServeHTTP(w, r)
	})
}

func normalHost(h string) string { return strings.ToLower(strings.TrimSuffix(h, ".")) }

func orDefault(v, def int) int {
	if v == 0 {
		return def
	}
	if v < 0 {
		return 0
	}
	return v
}
