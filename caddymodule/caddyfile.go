package caddymodule

import (
	"strconv"
	"strings"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
	"github.com/caddyserver/caddy/v2/caddyconfig/httpcaddyfile"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"

	"github.com/sessionpin/sessionpin/caddymodule/pin"
	"github.com/sessionpin/sessionpin/discoverysvc/schema"
)

func init() {
	httpcaddyfile.RegisterGlobalOption("session_pin", parseGlobalOption)
	httpcaddyfile.RegisterHandlerDirective("session_pin", parseHandlerDirective)
	httpcaddyfile.RegisterDirectiveOrder("session_pin", httpcaddyfile.Before, "reverse_proxy")
}

// parseGlobalOption sets up the session_pin app from the global option:
//
//	session_pin {
//		etcd <endpoints...>
//		prefix <prefix>
//		dial_timeout <duration>
//		username <name>
//		password <password>
//		tls {
//			ca <file>
//			cert <file>
//			key <file>
//		}
//		edge_id <id>
//		activity_interval <duration>
//	}
func parseGlobalOption(d *caddyfile.Dispenser, _ any) (any, error) {
	app := new(App)
	if err := app.UnmarshalCaddyfile(d); err != nil {
		return nil, err
	}
	return httpcaddyfile.App{Name: "session_pin", Value: caddyconfig.JSON(app, nil)}, nil
}

// UnmarshalCaddyfile sets up the app from Caddyfile tokens (see
// parseGlobalOption for the syntax).
func (a *App) UnmarshalCaddyfile(d *caddyfile.Dispenser) error {
	d.Next() // option name
	if d.NextArg() {
		return d.ArgErr()
	}
	seen := map[string]bool{}
	for d.NextBlock(0) {
		opt := d.Val()
		if seen[opt] {
			return d.Errf("%s: specified more than once", opt)
		}
		seen[opt] = true
		switch opt {
		case "etcd":
			a.Etcd = d.RemainingArgs()
			if len(a.Etcd) == 0 {
				return d.Errf("etcd: %v", d.ArgErr())
			}
		case "prefix":
			if err := oneArg(d, &a.Prefix); err != nil {
				return err
			}
		case "dial_timeout":
			if err := durationArg(d, &a.DialTimeout); err != nil {
				return err
			}
		case "username":
			if err := oneArg(d, &a.Username); err != nil {
				return err
			}
		case "password":
			if err := oneArg(d, &a.Password); err != nil {
				return err
			}
		case "edge_id":
			if err := oneArg(d, &a.EdgeID); err != nil {
				return err
			}
		case "activity_interval":
			if err := durationArg(d, &a.ActivityInterval); err != nil {
				return err
			}
		case "tls":
			if d.NextArg() {
				return d.ArgErr()
			}
			a.TLS = new(EtcdTLS)
			tlsSeen := map[string]bool{}
			for nesting := d.Nesting(); d.NextBlock(nesting); {
				sub := d.Val()
				if tlsSeen[sub] {
					return d.Errf("tls: %s: specified more than once", sub)
				}
				tlsSeen[sub] = true
				var err error
				switch sub {
				case "ca":
					err = oneArg(d, &a.TLS.CA)
				case "cert":
					err = oneArg(d, &a.TLS.Cert)
				case "key":
					err = oneArg(d, &a.TLS.Key)
				default:
					return d.Errf("tls: unrecognized subdirective '%s'", sub)
				}
				if err != nil {
					return err
				}
			}
		default:
			return d.Errf("unrecognized subdirective '%s'", opt)
		}
	}
	return nil
}

func parseHandlerDirective(h httpcaddyfile.Helper) (caddyhttp.MiddlewareHandler, error) {
	m := new(Handler)
	err := m.UnmarshalCaddyfile(h.Dispenser)
	return m, err
}

// UnmarshalCaddyfile sets up the handler from Caddyfile tokens:
//
//	session_pin {
//		region <region>
//		fallback_regions <region>...
//		key hs256 <secret> | key ed25519|es256 <private-key.pem>
//		verify_key hs256 <secret> | verify_key ed25519|es256 <key.pem>
//		issuer <iss>
//		audience <aud>
//		pin_ttl <duration>
//		refresh_grace <duration>
//		header <name>
//		cookie <name>
//		claim <name>
//		refresh_path <path>
//		closest_path <path>
//		retry_after <duration>
//		unreachable_for <duration>
//		hysteresis <number>
//		slow_start <duration> {
//			aggression <number>
//			min_share <fraction>
//		}
//		limit_edges <n>
//		token_cache <entries>
//		catch_up_limit <duration>
//		clock_skew <duration>
//	}
//
// verify_key may be repeated; every other option may appear once.
func (h *Handler) UnmarshalCaddyfile(d *caddyfile.Dispenser) error {
	d.Next() // directive name
	if d.NextArg() {
		return d.ArgErr()
	}
	seen := map[string]bool{}
	for d.NextBlock(0) {
		opt := d.Val()
		if opt != "verify_key" && seen[opt] {
			return d.Errf("%s: specified more than once", opt)
		}
		seen[opt] = true
		var err error
		switch opt {
		case "region":
			err = oneArg(d, &h.Region)
		case "fallback_regions":
			h.FallbackRegions = d.RemainingArgs()
			if len(h.FallbackRegions) == 0 {
				return d.Errf("fallback_regions: missing value")
			}
			for _, r := range h.FallbackRegions {
				if !schema.ValidName(r) {
					return d.Errf("fallback_regions: %q %s", r, schema.NameRule)
				}
			}
		case "key":
			var k pin.KeyConfig
			k, err = keyArgs(d, "key")
			h.Key = &k
		case "verify_key":
			var k pin.KeyConfig
			k, err = keyArgs(d, "verify_key")
			h.VerifyKeys = append(h.VerifyKeys, k)
		case "issuer":
			err = oneArg(d, &h.Issuer)
		case "audience":
			err = oneArg(d, &h.Audience)
		case "pin_ttl":
			err = durationArg(d, &h.PinTTL)
		case "refresh_grace":
			err = durationArg(d, &h.RefreshGrace)
		case "header":
			err = oneArg(d, &h.Header)
		case "cookie":
			err = oneArg(d, &h.Cookie)
		case "claim":
			err = oneArg(d, &h.Claim)
		case "refresh_path":
			err = oneArg(d, &h.RefreshPath)
		case "closest_path":
			err = oneArg(d, &h.ClosestPath)
		case "retry_after":
			err = durationArg(d, &h.RetryAfter)
		case "unreachable_for":
			err = durationArg(d, &h.UnreachableFor)
		case "hysteresis":
			var s string
			if err = oneArg(d, &s); err != nil {
				break
			}
			v, perr := strconv.ParseFloat(s, 64)
			if perr != nil || v < 0 || v != v || v > 1e308 {
				return d.Errf("hysteresis: %q is not a number >= 0", s)
			}
			h.Hysteresis = &v
		case "slow_start":
			err = h.parseSlowStart(d)
		case "catch_up_limit":
			h.CatchUpLimit, err = durationOrZeroArg(d, "a limit such as 30s, or 0 to turn data-aware moves off")
		case "clock_skew":
			h.ClockSkew, err = durationOrZeroArg(d, "a bound such as 500ms, or 0")
		case "limit_edges":
			var s string
			if err = oneArg(d, &s); err != nil {
				break
			}
			n, perr := strconv.Atoi(s)
			if perr != nil || n < 1 || n > MaxLimitEdges {
				return d.Errf("limit_edges: %q is not a number of edges from 1 to %d", s, MaxLimitEdges)
			}
			h.LimitEdges = n
		case "token_cache":
			var s string
			if err = oneArg(d, &s); err != nil {
				break
			}
			n, perr := strconv.Atoi(s)
			if perr != nil || n < 0 {
				return d.Errf("token_cache: %q is not a number of entries >= 0", s)
			}
			h.TokenCache = &n
		default:
			return d.Errf("unrecognized subdirective '%s'", opt)
		}
		if err != nil {
			return err
		}
	}
	if h.Region == "" {
		return d.Err("region is required")
	}
	return nil
}

// keyArgs parses `<algorithm> <secret-or-file>`. An empty secret most often
// means an unset environment variable, so the error says which one the
// shipped Caddyfile uses.
func keyArgs(d *caddyfile.Dispenser, opt string) (pin.KeyConfig, error) {
	var k pin.KeyConfig
	if !d.NextArg() {
		return k, d.Errf("%s: want <algorithm> <secret|file>", opt)
	}
	k.Algorithm = strings.ToLower(d.Val())
	var val string
	if d.NextArg() {
		val = d.Val()
	}
	if d.NextArg() {
		return k, d.Errf("%s: too many arguments", opt)
	}
	switch k.Algorithm {
	case "hs256":
		if val == "" {
			return k, d.Errf("%s hs256: secret is empty (is SESSIONPIN_SECRET set?)", opt)
		}
		if err := pin.CheckSecret(val); err != nil {
			return k, d.Errf("%s hs256: %v (check SESSIONPIN_SECRET)", opt, err)
		}
		k.Secret = val
	case "ed25519", "es256":
		if val == "" {
			return k, d.Errf("%s %s: PEM key file is missing", opt, k.Algorithm)
		}
		k.File = val
	default:
		return k, d.Errf("%s: unsupported algorithm %q (want hs256, ed25519 or es256)", opt, k.Algorithm)
	}
	return k, nil
}

func oneArg(d *caddyfile.Dispenser, dst *string) error {
	opt := d.Val()
	if !d.NextArg() {
		return d.Errf("%s: missing value", opt)
	}
	*dst = d.Val()
	if d.NextArg() {
		return d.Errf("%s: too many arguments", opt)
	}
	return nil
}

// durationOrZeroArg reads an option's one duration argument, 0 included;
// want says what the option takes, for the error.
func durationOrZeroArg(d *caddyfile.Dispenser, want string) (*caddy.Duration, error) {
	opt := d.Val()
	var s string
	if err := oneArg(d, &s); err != nil {
		return nil, err
	}
	v, err := caddy.ParseDuration(s)
	if err != nil || v < 0 {
		return nil, d.Errf("%s: bad duration %q: want %s", opt, s, want)
	}
	dur := caddy.Duration(v)
	return &dur, nil
}

func durationArg(d *caddyfile.Dispenser, dst *caddy.Duration) error {
	opt := d.Val()
	var s string
	if err := oneArg(d, &s); err != nil {
		return err
	}
	v, err := caddy.ParseDuration(s)
	if err != nil {
		return d.Errf("%s: bad duration %q: %v", opt, s, err)
	}
	if v <= 0 {
		return d.Errf("%s: bad duration %q: must be positive", opt, s)
	}
	*dst = caddy.Duration(v)
	return nil
}

// Interface guards
var (
	_ caddyfile.Unmarshaler = (*Handler)(nil)
	_ caddyfile.Unmarshaler = (*App)(nil)
)
