package caddymodule

import (
	"errors"
	"fmt"
	"math"
	"strconv"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"

	"github.com/sessionpin/sessionpin/caddymodule/placement"
)

// DefaultSlowStart is the slow-start window when slow_start is not set:
// five heartbeats at the agent's default interval, long enough for a
// joining server's own reports to steer its ramp.
const DefaultSlowStart = 15 * time.Second

// SlowStartConfig is how a server that has just joined the registry, or
// come back to it, is ramped up (see placement.SlowStart). The window is
// the handler's slow_start; these are its finer settings.
type SlowStartConfig struct {
	// Aggression shapes the ramp: a server's share of new clients grows as
	// (time since it joined / window)^(1/aggression), so 1 is linear and
	// 2 rises faster at the start. Default: 1.
	Aggression float64 `json:"aggression,omitempty"`
	// MinShare is the share the ramp starts from, in (0, 1]: a joining
	// server takes some new clients at once, so that its load reports
	// mean something. Default: 0.1.
	MinShare float64 `json:"min_share,omitempty"`
}

// slowStart is the placement rule's slow start for the handler's options.
func (h *Handler) slowStart() placement.SlowStart {
	s := placement.SlowStart{Window: DefaultSlowStart}
	if h.SlowStart != nil {
		s.Window = time.Duration(*h.SlowStart)
	}
	if c := h.SlowStartRamp; c != nil {
		s.Aggression, s.MinShare = c.Aggression, c.MinShare
	}
	return s
}

// validateSlowStart checks slow_start and its settings.
func (h *Handler) validateSlowStart() error {
	if h.SlowStart != nil && *h.SlowStart < 0 {
		return errors.New("slow_start: must not be negative (0 turns it off)")
	}
	if c := h.SlowStartRamp; c != nil {
		if a := c.Aggression; a != 0 && !(a > 0 && a <= maxAggression) {
			return fmt.Errorf("slow_start aggression: %v is not a number in (0, %d]", a, maxAggression)
		}
		if m := c.MinShare; m != 0 && !(m > 0 && m <= 1) {
			return fmt.Errorf("slow_start min_share: %v is not a number in (0, 1]", m)
		}
	}
	return nil
}

// maxAggression bounds the ramp's shape: beyond it the ramp is a step.
const maxAggression = 100

// parseSlowStart reads
//
//	slow_start <window> {
//		aggression <number>
//		min_share <fraction>
//	}
//
// where the block is optional.
func (h *Handler) parseSlowStart(d *caddyfile.Dispenser) error {
	var arg string
	if err := oneArg(d, &arg); err != nil {
		return err
	}
	v, err := caddy.ParseDuration(arg)
	if err != nil || v < 0 {
		return d.Errf("slow_start: bad duration %q: want a window such as 15s, or 0 to turn slow start off", arg)
	}
	window := caddy.Duration(v)
	h.SlowStart = &window
	seen := map[string]bool{}
	for nesting := d.Nesting(); d.NextBlock(nesting); {
		opt := d.Val()
		if seen[opt] {
			return d.Errf("slow_start %s: specified more than once", opt)
		}
		seen[opt] = true
		var s string
		if err := oneArg(d, &s); err != nil {
			return err
		}
		if opt != "aggression" && opt != "min_share" {
			return d.Errf("slow_start: unrecognized option '%s'", opt)
		}
		v, err := strconv.ParseFloat(s, 64)
		if h.SlowStartRamp == nil {
			h.SlowStartRamp = &SlowStartConfig{}
		}
		switch opt {
		case "aggression":
			if err != nil || !(v > 0 && v <= maxAggression) {
				return d.Errf("slow_start aggression: %q is not a number in (0, %d]", s, maxAggression)
			}
			h.SlowStartRamp.Aggression = v
		case "min_share":
			if err != nil || !(v > 0 && v <= 1) || math.IsNaN(v) {
				return d.Errf("slow_start min_share: %q is not a number in (0, 1]", s)
			}
			h.SlowStartRamp.MinShare = v
		default:
			return d.Errf("slow_start: unrecognized option '%s'", opt)
		}
	}
	return nil
}
