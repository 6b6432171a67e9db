package caddymodule

import (
	"math"
	"strings"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"

	"github.com/sessionpin/sessionpin/caddymodule/placement"
)

func durationp(d time.Duration) *caddy.Duration { v := caddy.Duration(d); return &v }

func TestSlowStartCaddyfile(t *testing.T) {
	const head = "session_pin {\n region eu\n"
	cases := []struct {
		name    string
		body    string
		want    placement.SlowStart
		wantErr string
	}{
		{"default: on", "", placement.SlowStart{Window: DefaultSlowStart}, ""},
		{"a window", "slow_start 30s", placement.SlowStart{Window: 30 * time.Second}, ""},
		{"0 turns it off", "slow_start 0", placement.SlowStart{}, ""},
		{"0s turns it off", "slow_start 0s", placement.SlowStart{}, ""},
		{"the ramp's shape", "slow_start 1m {\n aggression 2\n min_share 0.25\n }",
			placement.SlowStart{Window: time.Minute, Aggression: 2, MinShare: 0.25}, ""},
		{"min share 1", "slow_start 1m {\n min_share 1\n }", placement.SlowStart{Window: time.Minute, MinShare: 1}, ""},
		{"negative", "slow_start -5s", placement.SlowStart{}, `slow_start: bad duration "-5s"`},
		{"not a duration", "slow_start soon", placement.SlowStart{}, `slow_start: bad duration "soon"`},
		{"no value", "slow_start", placement.SlowStart{}, "slow_start: missing value"},
		{"two values", "slow_start 1s 2s", placement.SlowStart{}, "slow_start: too many arguments"},
		{"twice", "slow_start 1s\n slow_start 2s", placement.SlowStart{}, "slow_start: specified more than once"},
		{"aggression 0", "slow_start 1m {\n aggression 0\n }", placement.SlowStart{}, `aggression: "0" is not a number in (0, 100]`},
		{"aggression negative", "slow_start 1m {\n aggression -1\n }", placement.SlowStart{}, "aggression"},
		{"aggression NaN", "slow_start 1m {\n aggression NaN\n }", placement.SlowStart{}, "aggression"},
		{"aggression huge", "slow_start 1m {\n aggression 1e9\n }", placement.SlowStart{}, "aggression"},
		{"aggression words", "slow_start 1m {\n aggression high\n }", placement.SlowStart{}, "aggression"},
		{"min share 0", "slow_start 1m {\n min_share 0\n }", placement.SlowStart{}, `min_share: "0" is not a number in (0, 1]`},
		{"min share above 1", "slow_start 1m {\n min_share 1.5\n }", placement.SlowStart{}, "min_share"},
		{"min share NaN", "slow_start 1m {\n min_share NaN\n }", placement.SlowStart{}, "min_share"},
		{"min share twice", "slow_start 1m {\n min_share 0.2\n min_share 0.3\n }", placement.SlowStart{}, "min_share: specified more than once"},
		{"min share no value", "slow_start 1m {\n min_share\n }", placement.SlowStart{}, "min_share: missing value"},
		{"unknown ramp option", "slow_start 1m {\n window 5s\n }", placement.SlowStart{}, "slow_start: unrecognized option 'window'"},
	}
	for _, tt := range cases {
		t.Run(tt.name, func(t *testing.T) {
			var h Handler
			err := h.UnmarshalCaddyfile(caddyfile.NewTestDispenser(head + tt.body + "\n}"))
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("error %v, want it to contain %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if err := h.validateSlowStart(); err != nil {
				t.Fatalf("validate: %v", err)
			}
			if got := h.slowStart(); got != tt.want {
				t.Fatalf("slow start %+v, want %+v", got, tt.want)
			}
		})
	}
}

// The JSON config is checked as the Caddyfile is: a bad value fails at load
// with the option's name.
func TestSlowStartValidate(t *testing.T) {
	cases := []struct {
		name    string
		h       Handler
		wantErr string
	}{
		{"unset", Handler{}, ""},
		{"off", Handler{SlowStart: durationp(0)}, ""},
		{"shape unset is the default", Handler{SlowStartRamp: &SlowStartConfig{}}, ""},
		{"negative window", Handler{SlowStart: durationp(-time.Second)}, "slow_start: must not be negative"},
		{"negative aggression", Handler{SlowStartRamp: &SlowStartConfig{Aggression: -1}}, "slow_start aggression"},
		{"NaN aggression", Handler{SlowStartRamp: &SlowStartConfig{Aggression: math.NaN()}}, "slow_start aggression"},
		{"infinite aggression", Handler{SlowStartRamp: &SlowStartConfig{Aggression: math.Inf(1)}}, "slow_start aggression"},
		{"aggression at the bound", Handler{SlowStartRamp: &SlowStartConfig{Aggression: maxAggression}}, ""},
		{"negative min share", Handler{SlowStartRamp: &SlowStartConfig{MinShare: -0.1}}, "slow_start min_share"},
		{"NaN min share", Handler{SlowStartRamp: &SlowStartConfig{MinShare: math.NaN()}}, "slow_start min_share"},
		{"min share above 1", Handler{SlowStartRamp: &SlowStartConfig{MinShare: 1.01}}, "slow_start min_share"},
		{"min share 1", Handler{SlowStartRamp: &SlowStartConfig{MinShare: 1}}, ""},
	}
	for _, tt := range cases {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.h.validateSlowStart()
			if tt.wantErr == "" {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("error %v, want it to contain %q", err, tt.wantErr)
			}
		})
	}
}
