package caddymodule

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"syscall"
	"testing"

	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp/reverseproxy"
)

// connectErr is a dial error as net.Dialer returns it.
func connectErr(cause error) error {
	return &net.OpError{Op: "dial", Net: "tcp", Addr: &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 9},
		Err: os.NewSyscallError("connect", cause)}
}

// asProxied wraps a dial error the way reverse_proxy hands it to the
// handler after it.
func asProxied(cause error) error {
	return caddyhttp.Error(http.StatusBadGateway, reverseproxy.NewDialError(cause))
}

type timeoutErr struct{}

func (timeoutErr) Error() string   { return "i/o timeout" }
func (timeoutErr) Timeout() bool   { return true }
func (timeoutErr) Temporary() bool { return true }

func TestClassifyDialError(t *testing.T) {
	tests := []struct {
		name string
		err  error
		want dialFault
	}{
		{"no error", nil, faultNone},
		{"error after connecting", caddyhttp.Error(http.StatusBadGateway, errors.New("EOF")), faultNone},
		{"response header timeout", caddyhttp.Error(http.StatusGatewayTimeout, errors.New("timeout awaiting response headers")), faultNone},

		{"connection refused", asProxied(connectErr(syscall.ECONNREFUSED)), faultServer},
		{"host unreachable", asProxied(connectErr(syscall.EHOSTUNREACH)), faultServer},
		{"network unreachable", asProxied(connectErr(syscall.ENETUNREACH)), faultServer},
		{"connect timed out (kernel)", asProxied(connectErr(syscall.ETIMEDOUT)), faultServer},
		{"connect timed out (dial timeout)", asProxied(&net.OpError{Op: "dial", Net: "tcp", Err: timeoutErr{}}), faultServer},
		{"dial deadline", asProxied(fmt.Errorf("dial: %w", context.DeadlineExceeded)), faultServer},
		{"reset while writing the proxy header", asProxied(connectErr(syscall.ECONNRESET)), faultServer},
		{"name does not resolve", asProxied(&net.OpError{Op: "dial", Net: "tcp", Err: &net.DNSError{Err: "no such host", Name: "x.invalid", IsNotFound: true}}), faultServer},
		{"wrapped once more", fmt.Errorf("proxy: %w", asProxied(connectErr(syscall.ECONNREFUSED))), faultServer},

		{"out of local ports", asProxied(connectErr(syscall.EADDRNOTAVAIL)), faultEdge},
		{"out of files (process)", asProxied(&net.OpError{Op: "dial", Net: "tcp", Err: os.NewSyscallError("socket", syscall.EMFILE)}), faultEdge},
		{"out of files (system)", asProxied(&net.OpError{Op: "dial", Net: "tcp", Err: os.NewSyscallError("socket", syscall.ENFILE)}), faultEdge},
		{"out of buffers", asProxied(connectErr(syscall.ENOBUFS)), faultEdge},
		{"out of memory", asProxied(connectErr(syscall.ENOMEM)), faultEdge},
		{"local address in use", asProxied(connectErr(syscall.EADDRINUSE)), faultEdge},

		{"client went away", asProxied(&net.OpError{Op: "dial", Net: "tcp", Err: context.Canceled}), faultAborted},

		{"local firewall", asProxied(connectErr(syscall.EPERM)), faultUnknown},
		{"no cause", asProxied(errors.New("something else")), faultUnknown},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := classifyDialError(tt.err); got != tt.want {
				t.Fatalf("classifyDialError(%v) = %v, want %v", tt.err, got, tt.want)
			}
		})
	}
}

// The classification reads the errno inside reverse_proxy's DialError,
// which has no Unwrap method; this fails if a Caddy upgrade changes the
// type so that the cause can no longer be read.
func TestDialCauseSeesThroughCaddy(t *testing.T) {
	cause := connectErr(syscall.EADDRNOTAVAIL)
	de := reverseproxy.NewDialError(cause)
	if got := dialCause(&de); got != cause {
		t.Fatalf("dialCause = %v, want %v", got, cause)
	}
}

// A request that reached its server pays no allocation for the
// classification.
func TestClassifyDialErrorNilDoesNotAllocate(t *testing.T) {
	if n := testing.AllocsPerRun(100, func() { classifyDialError(nil) }); n != 0 {
		t.Fatalf("allocates %.1f times", n)
	}
}
