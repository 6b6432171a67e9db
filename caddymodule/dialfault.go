package caddymodule

import (
	"context"
	"errors"
	"net"
	"net/http"
	"os"
	"reflect"
	"sync/atomic"
	"syscall"
	"time"
	"unsafe"

	"github.com/caddyserver/caddy/v2/modules/caddyhttp/reverseproxy"
	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"
)

// dialFault is whose fault a failed proxy attempt was. Only a failure of the
// server or of the path to it may mark the server unreachable: a mark moves
// clients, and a client must never be moved because the edge itself ran out
// of ports, files or buffers, since any client that can make the edge busy
// could then move every other client of a healthy server.
type dialFault int

const (
	// faultNone: no error, or an error after a connection was made; the
	// server was reached.
	faultNone dialFault = iota
	// faultServer: the server refused the connection, could not be routed
	// to, or did not answer the connect in time. The server is marked.
	faultServer
	// faultEdge: the edge's own resources ran out (local ports, file
	// descriptors, socket buffers, memory). Nothing is marked; the request
	// gets the edge's 502 edge_resources.
	faultEdge
	// faultAborted: the request was cancelled (the client went away) while
	// the edge was connecting. Nothing is marked or counted.
	faultAborted
	// faultUnknown: a dial error that says neither. Nothing is marked: the
	// rule is that only evidence against the server marks it.
	faultUnknown
)

func (f dialFault) String() string {
	switch f {
	case faultNone:
		return "none"
	case faultServer:
		return "server"
	case faultEdge:
		return "edge"
	case faultAborted:
		return "aborted"
	default:
		return "unknown"
	}
}

// classifyDialError says whose fault err from reverse_proxy was. A nil error
// or one that is not a dial error costs one type check.
func classifyDialError(err error) dialFault {
	if err == nil {
		return faultNone
	}
	var de reverseproxy.DialError
	if !errors.As(err, &de) {
		return faultNone
	}
	cause := dialCause(&de)
	if cause == nil {
		return faultServer
	}
	return classifyDial(cause)
}

// dialCause is the error a DialError wraps. reverse_proxy's DialError
// embeds it without an Unwrap method, so errors.As cannot reach the
// errno; the embedded interface is its only field, which
// TestDialCauseSeesThroughCaddy checks against the Caddy in go.mod. Should
// a Caddy upgrade change that, the cause is nil and every dial error marks
// the server, as before the distinction was made (and the test fails).
func dialCause(de *reverseproxy.DialError) error {
	if !dialErrorIsBareError {
		return nil
	}
	return *(*error)(unsafe.Pointer(de))
}

var dialErrorIsBareError = func() bool {
	t := reflect.TypeFor[reverseproxy.DialError]()
	return t.NumField() == 1 && t.Field(0).Type == reflect.TypeFor[error]() && t.Field(0).Offset == 0
}()

// classifyDial classifies the error of a connect attempt.
func classifyDial(err error) dialFault {
	if err == nil {
		return faultUnknown
	}
	if errors.Is(err, context.Canceled) {
		return faultAborted
	}
	var errno syscall.Errno
	if errors.As(err, &errno) {
		switch errno {
		case syscall.ECONNREFUSED, syscall.EHOSTUNREACH, syscall.ENETUNREACH,
			syscall.EHOSTDOWN, syscall.ENETDOWN, syscall.ETIMEDOUT,
			syscall.ECONNRESET, syscall.ECONNABORTED, syscall.EPIPE:
			return faultServer
		case syscall.EADDRNOTAVAIL, syscall.EADDRINUSE, syscall.EMFILE,
			syscall.ENFILE, syscall.ENOBUFS, syscall.ENOMEM, syscall.EAGAIN:
			return faultEdge
		}
		return faultUnknown
	}
	// A connect that outlived the dial timeout: the server or the path
	// did not answer in time.
	if errors.Is(err, context.DeadlineExceeded) || errors.Is(err, os.ErrDeadlineExceeded) {
		return faultServer
	}
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		return faultServer
	}
	// A name that does not resolve is the path to the server failing.
	var dns *net.DNSError
	if errors.As(err, &dns) {
		return faultServer
	}
	return faultUnknown
}

var edgeResourceErrorsTotal = prometheus.NewCounter(prometheus.CounterOpts{
	Name: "sessionpin_edge_resource_errors_total",
	Help: "Requests answered 502 edge_resources because this edge could not open a connection for lack of its own resources (local ports, files, buffers); no server was marked.",
})

// edgeResourceLogEvery bounds the warnings: a client that keeps the edge
// out of ports would otherwise make it log once per request.
const edgeResourceLogEvery = time.Second

var edgeResourceLastLog atomic.Int64

// edgeResources answers a request whose connection failed for lack of the
// edge's own resources: the server is not blamed, the client is not moved,
// and it may retry.
func (h *Handler) edgeResources(w http.ResponseWriter, t *target, err error) error {
	edgeResourceErrorsTotal.Inc()
	now := time.Now().UnixNano()
	if last := edgeResourceLastLog.Load(); now-last >= int64(edgeResourceLogEvery) && edgeResourceLastLog.CompareAndSwap(last, now) {
		h.logger.Warn("edge out of resources to connect to a server; server not marked",
			zap.String("server", t.id), zap.String("dial", t.dial), zap.Error(err))
	}
	w.Header()["Retry-After"] = edgeResourcesRetryAfter
	return writeJSONError(w, http.StatusBadGateway, "edge_resources", map[string]any{"server": t.id})
}

var edgeResourcesRetryAfter = []string{"1"}
