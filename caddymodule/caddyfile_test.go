package caddymodule

import (
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"

	"github.com/sessionpin/sessionpin/caddymodule/pin"
	"github.com/sessionpin/sessionpin/discoverysvc/schema"
)

const secret32 = "0123456789abcdef0123456789abcdef"

func float(v float64) *float64 { return &v }

func intp(v int) *int { return &v }

// checkUnmarshal parses input into a fresh T and checks it against want,
// or that the error contains wantErr.
func checkUnmarshal[T any, PT interface {
	*T
	caddyfile.Unmarshaler
}](t *testing.T, input string, want T, wantErr string) {
	t.Helper()
	var got T
	err := PT(&got).UnmarshalCaddyfile(caddyfile.NewTestDispenser(input))
	if wantErr != "" {
		if err == nil || !strings.Contains(err.Error(), wantErr) {
			t.Fatalf("error %v, want it to contain %q", err, wantErr)
		}
		return
	}
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("got  %+v\nwant %+v", got, want)
	}
}

func TestHandlerUnmarshalCaddyfile(t *testing.T) {
	cases := []struct {
		name    string
		input   string
		want    Handler
		wantErr string
	}{
		{
			name:  "minimal",
			input: "session_pin {\n region eu-west\n key hs256 " + secret32 + "\n}",
			want:  Handler{Region: "eu-west", Key: &pin.KeyConfig{Algorithm: "hs256", Secret: secret32}},
		},
		{
			name: "every option",
			input: `session_pin {
				region us-east
				fallback_regions us-west eu-west
				key ES256 /keys/sign.pem
				verify_key hs256 ` + secret32 + `
				verify_key ed25519 /keys/old.pem
				issuer edge.example
				audience orders-api
				pin_ttl 1h
				refresh_grace 2d
				header X-Pin
				cookie pin
				claim server_id
				refresh_path /token/refresh
				closest_path /nearest
				retry_after 5s
				unreachable_for 20s
				hysteresis 0.25
				token_cache 1000
			}`,
			want: Handler{
				Region:          "us-east",
				FallbackRegions: []string{"us-west", "eu-west"},
				Key:             &pin.KeyConfig{Algorithm: "es256", File: "/keys/sign.pem"},
				VerifyKeys: []pin.KeyConfig{
					{Algorithm: "hs256", Secret: secret32},
					{Algorithm: "ed25519", File: "/keys/old.pem"},
				},
				Issuer:         "edge.example",
				Audience:       "orders-api",
				PinTTL:         caddy.Duration(time.Hour),
				RefreshGrace:   caddy.Duration(48 * time.Hour),
				Header:         "X-Pin",
				Cookie:         "pin",
				Claim:          "server_id",
				RefreshPath:    "/token/refresh",
				ClosestPath:    "/nearest",
				RetryAfter:     caddy.Duration(5 * time.Second),
				UnreachableFor: caddy.Duration(20 * time.Second),
				Hysteresis:     float(0.25),
				TokenCache:     intp(1000),
			},
		},
		{name: "hysteresis zero is kept", input: "session_pin {\n region r\n key hs256 " + secret32 + "\n hysteresis 0\n}",
			want: Handler{Region: "r", Key: &pin.KeyConfig{Algorithm: "hs256", Secret: secret32}, Hysteresis: float(0)}},
		{name: "no region", input: "session_pin {\n key hs256 " + secret32 + "\n}", wantErr: "region is required"},
		{name: "no block", input: "session_pin", wantErr: "region is required"},
		{name: "argument on directive", input: "session_pin eu {\n region r\n}", wantErr: "wrong argument count"},
		{name: "unknown option", input: "session_pin {\n region r\n regoin x\n}", wantErr: "unrecognized subdirective 'regoin'"},
		{name: "duplicate option", input: "session_pin {\n region a\n region b\n}", wantErr: "region: specified more than once"},
		{name: "duplicate key", input: "session_pin {\n region a\n key hs256 " + secret32 + "\n key hs256 " + secret32 + "\n}", wantErr: "key: specified more than once"},
		{name: "region missing value", input: "session_pin {\n region\n}", wantErr: "region: missing value"},
		{name: "region two values", input: "session_pin {\n region a b\n}", wantErr: "region: too many arguments"},
		{name: "audience missing value", input: "session_pin {\n region r\n audience\n}", wantErr: "audience: missing value"},
		{name: "fallback_regions missing value", input: "session_pin {\n region r\n fallback_regions\n}", wantErr: "fallback_regions: missing value"},
		{name: "fallback_regions bad name", input: "session_pin {\n region r\n fallback_regions us-east eu/west\n}", wantErr: `fallback_regions: "eu/west" must be 1-64 characters`},
		{name: "fallback_regions twice", input: "session_pin {\n region r\n fallback_regions a\n fallback_regions b\n}", wantErr: "fallback_regions: specified more than once"},
		{name: "empty secret", input: "session_pin {\n region r\n key hs256\n}", wantErr: "key hs256: secret is empty (is SESSIONPIN_SECRET set?)"},
		{name: "short secret", input: "session_pin {\n region r\n key hs256 short\n}", wantErr: "key hs256: secret must be at least 32 bytes, got 5"},
		{name: "key without algorithm", input: "session_pin {\n region r\n key\n}", wantErr: "key: want <algorithm> <secret|file>"},
		{name: "unsupported algorithm", input: "session_pin {\n region r\n key rs256 /k.pem\n}", wantErr: `key: unsupported algorithm "rs256"`},
		{name: "pem key without file", input: "session_pin {\n region r\n key ed25519\n}", wantErr: "key ed25519: PEM key file is missing"},
		{name: "verify_key short secret", input: "session_pin {\n region r\n verify_key hs256 abc\n}", wantErr: "verify_key hs256: secret must be at least 32 bytes"},
		{name: "key extra argument", input: "session_pin {\n region r\n key hs256 " + secret32 + " extra\n}", wantErr: "key: too many arguments"},
		{name: "bad duration", input: "session_pin {\n region r\n pin_ttl soon\n}", wantErr: `pin_ttl: bad duration "soon"`},
		{name: "bad unreachable_for", input: "session_pin {\n region r\n unreachable_for 0s\n}", wantErr: `unreachable_for: bad duration "0s": must be positive`},
		{name: "negative duration", input: "session_pin {\n region r\n retry_after -5s\n}", wantErr: `retry_after: bad duration "-5s": must be positive`},
		{name: "bad hysteresis", input: "session_pin {\n region r\n hysteresis lots\n}", wantErr: `hysteresis: "lots" is not a number >= 0`},
		{name: "negative hysteresis", input: "session_pin {\n region r\n hysteresis -1\n}", wantErr: `hysteresis: "-1" is not a number >= 0`},
		{name: "token_cache zero is kept", input: "session_pin {\n region r\n key hs256 " + secret32 + "\n token_cache 0\n}",
			want: Handler{Region: "r", Key: &pin.KeyConfig{Algorithm: "hs256", Secret: secret32}, TokenCache: intp(0)}},
		{name: "limit_edges", input: "session_pin {\n region r\n key hs256 " + secret32 + "\n limit_edges 3\n}",
			want: Handler{Region: "r", Key: &pin.KeyConfig{Algorithm: "hs256", Secret: secret32}, LimitEdges: 3}},
		{name: "limit_edges zero", input: "session_pin {\n region r\n limit_edges 0\n}", wantErr: `limit_edges: "0" is not a number of edges from 1 to 1000`},
		{name: "limit_edges absurd", input: "session_pin {\n region r\n limit_edges 1001\n}", wantErr: `limit_edges: "1001" is not a number of edges from 1 to 1000`},
		{name: "limit_edges not a number", input: "session_pin {\n region r\n limit_edges all\n}", wantErr: `limit_edges: "all" is not a number of edges from 1 to 1000`},
		{name: "bad token_cache", input: "session_pin {\n region r\n token_cache many\n}", wantErr: `token_cache: "many" is not a number of entries >= 0`},
		{name: "negative token_cache", input: "session_pin {\n region r\n token_cache -1\n}", wantErr: `token_cache: "-1" is not a number of entries >= 0`},
		{name: "NaN hysteresis", input: "session_pin {\n region r\n hysteresis NaN\n}", wantErr: `hysteresis: "NaN" is not a number >= 0`},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) { checkUnmarshal(t, c.input, c.want, c.wantErr) })
	}
}

func TestAppUnmarshalCaddyfile(t *testing.T) {
	cases := []struct {
		name    string
		input   string
		want    App
		wantErr string
	}{
		{name: "empty", input: "session_pin", want: App{}},
		{
			name: "every option",
			input: `session_pin {
				etcd 10.0.0.1:2379 https://10.0.0.2:2379
				prefix /fleet/
				dial_timeout 2s
				username edge
				password hunter2
				tls {
					ca /etc/etcd/ca.pem
					cert /etc/etcd/client.pem
					key /etc/etcd/client-key.pem
				}
				edge_id edge-eu-1
				activity_interval 2s
			}`,
			want: App{
				EdgeID:           "edge-eu-1",
				ActivityInterval: caddy.Duration(2 * time.Second),
				Etcd:             []string{"10.0.0.1:2379", "https://10.0.0.2:2379"},
				Prefix:           "/fleet/",
				DialTimeout:      caddy.Duration(2 * time.Second),
				Username:         "edge",
				Password:         "hunter2",
				TLS:              &EtcdTLS{CA: "/etc/etcd/ca.pem", Cert: "/etc/etcd/client.pem", Key: "/etc/etcd/client-key.pem"},
			},
		},
		{name: "etcd without endpoints", input: "session_pin {\n etcd\n}", wantErr: "etcd:"},
		{name: "unknown option", input: "session_pin {\n etc 1\n}", wantErr: "unrecognized subdirective 'etc'"},
		{name: "duplicate option", input: "session_pin {\n prefix /a/\n prefix /b/\n}", wantErr: "prefix: specified more than once"},
		{name: "bad dial_timeout", input: "session_pin {\n dial_timeout x\n}", wantErr: `dial_timeout: bad duration "x"`},
		{name: "unknown tls option", input: "session_pin {\n tls {\n crt x\n }\n}", wantErr: "tls: unrecognized subdirective 'crt'"},
		{name: "argument on option", input: "session_pin x", wantErr: "wrong argument count"},
		{name: "bad activity_interval", input: "session_pin {\n activity_interval often\n}", wantErr: `activity_interval: bad duration "often"`},
		{name: "edge_id twice", input: "session_pin {\n edge_id a\n edge_id b\n}", wantErr: "edge_id: specified more than once"},
		{name: "edge_id two values", input: "session_pin {\n edge_id a b\n}", wantErr: "edge_id: too many arguments"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) { checkUnmarshal(t, c.input, c.want, c.wantErr) })
	}
}

func TestUpstreamsUnmarshalCaddyfile(t *testing.T) {
	var u Upstreams
	if err := u.UnmarshalCaddyfile(caddyfile.NewTestDispenser("session_pin")); err != nil {
		t.Fatal(err)
	}
	for _, bad := range []string{"session_pin extra", "session_pin {\n x\n}"} {
		if err := u.UnmarshalCaddyfile(caddyfile.NewTestDispenser(bad)); err == nil {
			t.Errorf("%q: no error", bad)
		}
	}
}

// TestHandlerValidate: JSON configs get the same checks as the Caddyfile.
func TestHandlerValidate(t *testing.T) {
	ok := func() Handler {
		return Handler{Region: "eu", Key: &pin.KeyConfig{Algorithm: "hs256", Secret: secret32}}
	}
	cases := []struct {
		name    string
		mod     func(*Handler)
		wantErr string
	}{
		{"valid", func(*Handler) {}, ""},
		{"no region", func(h *Handler) { h.Region = "" }, "region is required"},
		{"bad region", func(h *Handler) { h.Region = "eu west" }, "region:"},
		{"fallback regions", func(h *Handler) { h.FallbackRegions = []string{"us", "ap"} }, ""},
		{"bad fallback region", func(h *Handler) { h.FallbackRegions = []string{"us", ""} }, `fallback_regions: "" must be 1-64 characters`},
		{"own region as fallback", func(h *Handler) { h.FallbackRegions = []string{"us", "eu"} }, `fallback_regions: "eu" is the edge's own region`},
		{"repeated fallback region", func(h *Handler) { h.FallbackRegions = []string{"us", "ap", "us"} }, `fallback_regions: "us" is listed more than once`},
		{"no key", func(h *Handler) { h.Key = nil }, "key is required"},
		{"negative hysteresis", func(h *Handler) { h.Hysteresis = float(-0.1) }, "hysteresis:"},
		{"short ttl", func(h *Handler) { h.PinTTL = caddy.Duration(time.Millisecond) }, "pin_ttl:"},
		{"negative unreachable_for", func(h *Handler) { h.UnreachableFor = caddy.Duration(-time.Second) }, "unreachable_for: must not be negative"},
		{"bad header", func(h *Handler) { h.Header = "X Pin" }, "header:"},
		{"bad cookie", func(h *Handler) { h.Cookie = "a;b" }, "cookie:"},
		{"relative path", func(h *Handler) { h.ClosestPath = "closest" }, "closest_path:"},
		{"token cache off", func(h *Handler) { h.TokenCache = intp(0) }, ""},
		{"negative token cache", func(h *Handler) { h.TokenCache = intp(-1) }, "token_cache: must not be negative"},
		{"negative limit_edges", func(h *Handler) { h.LimitEdges = -1 }, "limit_edges: must be between 1 and 1000 (0: the default, 1)"},
		{"absurd limit_edges", func(h *Handler) { h.LimitEdges = MaxLimitEdges + 1 }, "limit_edges: must be between 1 and 1000 (0: the default, 1)"},
	}
	for _, c := range cases {
		h := ok()
		c.mod(&h)
		err := h.Validate()
		if c.wantErr == "" && err != nil || c.wantErr != "" && (err == nil || !strings.Contains(err.Error(), c.wantErr)) {
			t.Errorf("%s: error %v, want %q", c.name, err, c.wantErr)
		}
	}
}

// FuzzUnmarshalCaddyfile: no input makes the Caddyfile parsers panic, and
// whatever they accept names a region.
func FuzzUnmarshalCaddyfile(f *testing.F) {
	for _, seed := range []string{
		"session_pin {\n region eu-west\n key hs256 " + secret32 + "\n}",
		"session_pin {\n region r\n key es256 /k.pem\n verify_key ed25519 /o.pem\n hysteresis 0.5\n pin_ttl 1h\n}",
		"session_pin {\n etcd a:1 b:2\n tls {\n ca x\n }\n}",
		"session_pin {\n region r\n key\n}",
		"session_pin {\n hysteresis 1e400\n}",
		"session_pin {\n region r\n token_cache 99999999999999999999\n}",
		"session_pin {\n region eu\n fallback_regions us ap {\n}\n}",
		"session_pin {\n {\n}",
		"session_pin \"",
	} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, input string) {
		var h Handler
		err := h.UnmarshalCaddyfile(caddyfile.NewTestDispenser(input))
		if err == nil && h.Region == "" {
			t.Fatalf("accepted %q without a region", input)
		}
		for _, r := range h.FallbackRegions {
			if err == nil && !schema.ValidName(r) {
				t.Fatalf("accepted %q with fallback region %q", input, r)
			}
		}
		if err == nil {
			if verr := h.validateSlowStart(); verr != nil {
				t.Fatalf("accepted %q with a slow start that fails validation: %v", input, verr)
			}
		}
		var a App
		_ = a.UnmarshalCaddyfile(caddyfile.NewTestDispenser(input))
	})
}
