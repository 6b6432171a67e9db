package discoverysvc

import (
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Defaults of the limits that keep discovery, and the etcd it may embed,
// below the process's open-file limit whoever connects. A subscriber holds
// one connection for as long as it follows the stream, and a stream never
// ends by itself, so subscribers are bounded apart from connections.
const (
	// DefaultMaxConnections bounds the API listener's open connections.
	DefaultMaxConnections = 1024
	// DefaultMaxSubscribers bounds the events subscribers in total.
	DefaultMaxSubscribers = 256
	// DefaultMaxSubscribersPerClient bounds the subscribers of one client
	// address.
	DefaultMaxSubscribersPerClient = 8
	// subscriberRetryAfter is the Retry-After, in seconds, of a refused
	// subscriber.
	subscriberRetryAfter = "10"
)

// Reasons a subscriber is refused, the reason label of
// sessionpin_discovery_events_refused_total.
const (
	refusedTotal     = "total"
	refusedPerClient = "per_client"
)

// admitSubscriber decides whether one more subscriber may follow the
// stream, given how many follow it in all and from its client address. It
// returns "" to admit, else the limit that refuses it. A limit of 0 or less
// is no limit.
func admitSubscriber(total, fromClient, maxTotal, maxPerClient int) string {
	switch {
	case maxTotal > 0 && total >= maxTotal:
		return refusedTotal
	case maxPerClient > 0 && fromClient >= maxPerClient:
		return refusedPerClient
	}
	return ""
}

// subscriberLimit counts the events subscribers, in all and per client
// address.
type subscriberLimit struct {
	maxTotal, maxPerClient int

	mu       sync.Mutex
	total    int
	byClient map[string]int
}

func newSubscriberLimit(maxTotal, maxPerClient int) *subscriberLimit {
	return &subscriberLimit{maxTotal: maxTotal, maxPerClient: maxPerClient, byClient: map[string]int{}}
}

// acquire admits a subscriber from client, or returns the limit that
// refuses it. release must be called once the subscriber is gone.
func (l *subscriberLimit) acquire(client string) (release func(), refused string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if why := admitSubscriber(l.total, l.byClient[client], l.maxTotal, l.maxPerClient); why != "" {
		return nil, why
	}
	l.total++
	l.byClient[client]++
	var once sync.Once
	return func() {
		once.Do(func() {
			l.mu.Lock()
			defer l.mu.Unlock()
			l.total--
			if l.byClient[client]--; l.byClient[client] <= 0 {
				delete(l.byClient, client)
			}
		})
	}, ""
}

// clientAddress is the address a request's connection comes from, without
// its port: the unit of the per-client limit. Behind a proxy every client
// shares the proxy's address; give the proxy its own limit there.
func clientAddress(r *http.Request) string {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		return r.RemoteAddr
	}
	return host
}

// limitMetrics count what the limits refused.
type limitMetrics struct {
	eventsRefused    *prometheus.CounterVec
	connsRefused     prometheus.Counter
	connsOpen        prometheus.Gauge
	refusedTotalCtr  prometheus.Counter
	refusedClientCtr prometheus.Counter
}

func newLimitMetrics(reg *prometheus.Registry) *limitMetrics {
	m := &limitMetrics{
		eventsRefused: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "sessionpin_discovery_events_refused_total",
			Help: "Subscribers of GET /v1/events refused with 503 by a limit: total (--max-subscribers) or per_client (--max-subscribers-per-client).",
		}, []string{"reason"}),
		connsRefused: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "sessionpin_discovery_connections_refused_total",
			Help: "Connections to the API listener closed at once because --max-connections were open.",
		}),
		connsOpen: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "sessionpin_discovery_connections_open",
			Help: "Connections to the API listener open now.",
		}),
	}
	m.refusedTotalCtr = m.eventsRefused.WithLabelValues(refusedTotal)
	m.refusedClientCtr = m.eventsRefused.WithLabelValues(refusedPerClient)
	reg.MustRegister(m.eventsRefused, m.connsRefused, m.connsOpen)
	return m
}

func (m *limitMetrics) countRefusedSubscriber(why string) {
	if m == nil {
		return
	}
	if why == refusedPerClient {
		m.refusedClientCtr.Inc()
	} else {
		m.refusedTotalCtr.Inc()
	}
}

// refuseSubscriber answers a subscriber beyond a limit.
func refuseSubscriber(w http.ResponseWriter, why string) {
	w.Header().Set("Retry-After", subscriberRetryAfter)
	msg := "too many events subscribers"
	if why == refusedPerClient {
		msg += " from this address"
	}
	writeError(w, http.StatusServiceUnavailable, msg)
}

// LimitListener returns a listener that keeps at most max connections of
// l open: a connection beyond is closed as soon as it is accepted, and
// counted, so that the process keeps its files for the connections it
// serves and for the etcd it may embed. Unlike a listener that stops
// accepting, a client beyond the limit learns it at once instead of
// waiting in the kernel's queue. max of 0 or less is no limit.
func LimitListener(l net.Listener, max int, m *Metrics) net.Listener {
	ll := &limitListener{Listener: l, max: int64(max)}
	if m != nil {
		ll.metrics = m.limits
	}
	return ll
}

type limitListener struct {
	net.Listener
	max     int64
	open    atomic.Int64
	metrics *limitMetrics
}

func (l *limitListener) Accept() (net.Conn, error) {
	for {
		c, err := l.Listener.Accept()
		if err != nil {
			return nil, err
		}
		if n := l.open.Add(1); l.max > 0 && n > l.max {
			l.open.Add(-1)
			// Linger 0: the refused connection leaves no TIME_WAIT here.
			if tc, ok := c.(*net.TCPConn); ok {
				_ = tc.SetLinger(0)
			}
			_ = c.Close()
			if l.metrics != nil {
				l.metrics.connsRefused.Inc()
			}
			continue
		}
		if l.metrics != nil {
			l.metrics.connsOpen.Inc()
		}
		return &limitedConn{Conn: c, l: l}, nil
	}
}

// limitedConn gives its place back when closed, once.
type limitedConn struct {
	net.Conn
	l      *limitListener
	closed atomic.Bool
}

func (c *limitedConn) Close() error {
	if c.closed.CompareAndSwap(false, true) {
		c.l.open.Add(-1)
		if c.l.metrics != nil {
			c.l.metrics.connsOpen.Dec()
		}
	}
	return c.Conn.Close()
}

// Timeouts of the API server's connections.
const (
	// DefaultReadHeaderTimeout bounds the wait for a request's headers, so
	// a client that opens connections and sends nothing cannot keep them.
	DefaultReadHeaderTimeout = 10 * time.Second
	// DefaultIdleTimeout closes a kept-alive connection with no request.
	DefaultIdleTimeout = 60 * time.Second
)
