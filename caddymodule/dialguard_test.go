package caddymodule

import (
	"fmt"
	"net/http"
	"net/netip"
	"os"
	"strings"
	"testing"

	"github.com/sessionpin/sessionpin/discoverysvc/schema"
)

func TestDialGuard(t *testing.T) {
	g := newDialGuard([]string{"localhost:2019", "unix//run/caddy-admin.sock"},
		[]string{"127.0.0.1:2379", "https://etcd-1.internal.invalid:2379", "10.0.0.7:2379"})
	open := newDialGuard([]string{"tcp/:2019"}, nil)
	host, _ := os.Hostname()
	var local string
	for _, a := range localAddrs() {
		if !a.IsLoopback() && !a.IsLinkLocalUnicast() && a.Is4() {
			local = a.String()
			break
		}
	}
	tests := []struct {
		g       *dialGuard
		url     string
		refused bool
	}{
		{g, "http://127.0.0.1:2019", true},
		{g, "http://127.0.0.1:2019/path", true},
		{g, "http://127.9.9.9:2019", true},
		{g, "http://[::1]:2019", true},
		{g, "http://[::ffff:127.0.0.1]:2019", true},
		{g, "http://localhost:2019", true},
		{g, "http://LOCALHOST.:2019", true},
		{g, "https://localhost:2019", true},
		{g, "http://127.0.0.1:2379", true},
		{g, "http://localhost:2379", true},
		{g, "http://etcd-1.internal.invalid:2379", true},
		{g, "https://ETCD-1.internal.invalid:2379", true},
		{g, "http://10.0.0.7:2379", true},
		{g, "http://" + host + ":2019", true},
		{g, "http://127.0.0.1:2020", false},
		{g, "http://127.0.0.1:9001", false},
		{g, "http://10.0.0.7:2019", false},
		{g, "http://10.0.0.8:2379", false},
		{g, "http://etcd-2.internal.invalid:2379", false},
		{g, "http://127.0.0.1", false},
		{open, "http://127.0.0.1:2019", true},
		{open, "http://" + host + ":2019", true},
		{open, "http://10.255.0.1:2019", false},
		{open, "http://127.0.0.1:2020", false},
	}
	if local != "" {
		tests = append(tests, struct {
			g       *dialGuard
			url     string
			refused bool
		}{open, "http://" + local + ":2019", true})
	}
	for _, tt := range tests {
		err := tt.g.check(schema.Server{ID: "x", Region: "r", URL: tt.url})
		if (err != nil) != tt.refused {
			t.Errorf("check(%s) = %v, want refused %v", tt.url, err, tt.refused)
		}
	}
	var none *dialGuard
	if err := none.check(schema.Server{URL: "http://127.0.0.1:2019"}); err != nil {
		t.Errorf("a nil guard refused: %v", err)
	}
}

func FuzzDialGuardCheck(f *testing.F) {
	g := newDialGuard([]string{"localhost:2019"}, []string{"127.0.0.1:2379"})
	for _, s := range []string{"http://127.0.0.1:2019", "http://[::1]:2019", "http://localhost.:2019", "http://a:80", "https://[::ffff:127.0.0.1]:2379"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, raw string) {
		if schema.ValidateURL(raw) != nil {
			return
		}
		err := g.check(schema.Server{URL: raw})
		addr, _ := schema.DialAddress(raw)
		// Whatever the spelling, loopback on the admin or etcd port is refused.
		if err == nil {
			ap, perr := netip.ParseAddrPort(addr)
			if perr == nil && ap.Addr().Unmap().IsLoopback() && (ap.Port() == 2019 || ap.Port() == 2379) {
				t.Fatalf("check(%q) let %s through", raw, addr)
			}
		}
	})
}

func TestStripPinCookie(t *testing.T) {
	for _, tt := range []struct {
		in, want []string
		changed  bool
	}{
		{[]string{"a=1; b=2"}, []string{"a=1; b=2"}, false},
		{nil, nil, false},
		{[]string{`a=1; sessionpin=t; b="x y"`}, []string{`a=1; b="x y"`}, true},
		{[]string{"sessionpin=t"}, []string{}, true},
		{[]string{"sessionpin=t; c=3", "d=4"}, []string{"c=3", "d=4"}, true},
		{[]string{"a=1 ; sessionpin=t"}, []string{"a=1"}, true},
		{[]string{" sessionpin = t ;a=1"}, []string{"a=1"}, true},
		{[]string{"sessionpinx=1;xsessionpin=2"}, []string{"sessionpinx=1;xsessionpin=2"}, false},
	} {
		got, changed := stripPinCookie(tt.in, "sessionpin")
		if changed != tt.changed || len(got) != len(tt.want) || (len(got) > 0 && strings.Join(got, "|") != strings.Join(tt.want, "|")) {
			t.Errorf("stripPinCookie(%q) = %q, %v; want %q, %v", tt.in, got, changed, tt.want, tt.changed)
		}
	}
}

func FuzzStripPinCookie(f *testing.F) {
	for _, s := range []string{"a=1; sessionpin=t; b=2", "sessionpin=t", ";;sessionpin=;", " sessionpin = x ; a", "a=\"s;essionpin=x\""} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, line string) {
		got, _ := stripPinCookie([]string{line}, "sessionpin")
		for _, l := range got {
			if hasCookie(l, "sessionpin") {
				t.Fatalf("stripPinCookie(%q) kept the pin: %q", line, l)
			}
		}
		// Every other cookie is kept, byte for byte apart from the blanks
		// around it.
		var want, kept []string
		for _, part := range strings.Split(line, ";") {
			if !isCookie(part, "sessionpin") && strings.TrimSpace(part) != "" {
				want = append(want, strings.TrimSpace(part))
			}
		}
		for _, l := range got {
			for _, part := range strings.Split(l, ";") {
				if strings.TrimSpace(part) != "" {
					kept = append(kept, strings.TrimSpace(part))
				}
			}
		}
		if strings.Join(want, ";") != strings.Join(kept, ";") {
			t.Fatalf("stripPinCookie(%q) = %q: kept %q, want %q", line, got, kept, want)
		}
	})
}

func TestStripUpstreamSession(t *testing.T) {
	h := &Handler{Cookie: "sessionpin", pinHeaderOut: "X-Session-Pin"}
	hdr := http.Header{
		"X-Session-Pin":            {"forged"},
		"X-Session-Server-Url":     {"http://evil"},
		"X-Session-Server-Changed": {"1"},
		"Set-Cookie":               {"sessionpin=forged", "app=1", " sessionpin =x; Path=/"},
		"X-App":                    {"kept"},
	}
	h.stripUpstreamSession(hdr)
	want := http.Header{"Set-Cookie": {"app=1"}, "X-App": {"kept"}}
	if fmt.Sprint(hdr) != fmt.Sprint(want) {
		t.Fatalf("after strip: %v, want %v", hdr, want)
	}
}
