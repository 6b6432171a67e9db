package schema

import (
	"fmt"
	"maps"
	"time"
)

// Progress is how far one server's data has caught up with one origin, the
// database primary where some writes commit: everything committed there more
// than Lag ago is in the server's copy. An edge moves a client to the server
// only when the client's last write at that origin is older than the lag
// (see the placement package).
type Progress struct {
	// LagMS bounds, in milliseconds, how far behind the origin the server's
	// data is. It is published in steps (see StepLag), rounded up, so that a
	// lag that wavers does not turn every heartbeat into a registry write.
	LagMS int64 `json:"lag_ms"`
	// Unknown is set when the server's progress source could not tell (it is
	// down, slow, or answered garbage). An unknown progress never counts as
	// caught up.
	Unknown bool `json:"unknown,omitempty"`
}

// Lag is LagMS as a duration.
func (p Progress) Lag() time.Duration { return time.Duration(p.LagMS) * time.Millisecond }

// Bounds of what a record may carry about progress.
const (
	// MaxOrigins bounds the origins one server reports: a server replicates
	// from a handful of primaries, and the record stays small.
	MaxOrigins = 16
	// MaxLag is the largest lag a record may carry; a source that reports
	// more is as good as unknown.
	MaxLag = 24 * time.Hour
	// FirstLagStep is the smallest non-zero published lag. Below it a copy
	// counts as caught up to within the time a refresh takes anyway.
	FirstLagStep = 250 * time.Millisecond
)

// ValidateProgress checks a record's origin and progress: the origin empty
// or a valid name; at most MaxOrigins origins, each a valid name, with a lag
// in [0, MaxLag], and no lag on an unknown progress.
func ValidateProgress(s Server) error {
	if s.Origin != "" && !ValidName(s.Origin) {
		return InvalidName("origin")
	}
	if len(s.Progress) > MaxOrigins {
		return &FieldError{"progress", fmt.Sprintf("at most %d origins", MaxOrigins)}
	}
	for origin, p := range s.Progress {
		if !ValidName(origin) {
			return &FieldError{"progress", fmt.Sprintf("origin %q %s", origin, NameRule)}
		}
		if p.LagMS < 0 || p.LagMS > MaxLag.Milliseconds() {
			return &FieldError{"progress", fmt.Sprintf("origin %q: lag_ms must be from 0 to %d", origin, MaxLag.Milliseconds())}
		}
		if p.Unknown && p.LagMS != 0 {
			return &FieldError{"progress", fmt.Sprintf("origin %q: an unknown progress has no lag_ms", origin)}
		}
	}
	return nil
}

// StepLag is the lag to publish for a measured lag, given the one published
// now. Lags are published in steps, FirstLagStep doubling up to MaxLag, and a
// measured lag is rounded up to its step: a lag that grows is published at
// once (a bound must never be too small for long), one that shrinks only
// when it is at least two steps below what is published, so a lag that
// wavers around a step does not write at every heartbeat. A negative
// measurement counts as 0; beyond MaxLag the result is MaxLag.
//
// Over a lag excursion from 0 to T and back, a server writes its record
// about 2·log2(T/FirstLagStep) times, and none while its lag holds.
func StepLag(published, measured time.Duration) time.Duration {
	step := ceilLagStep(measured)
	if step > published || step <= published/4 {
		return step
	}
	return published
}

// ceilLagStep rounds d up to a published step: 0, FirstLagStep, twice it, …,
// MaxLag.
func ceilLagStep(d time.Duration) time.Duration {
	if d <= 0 {
		return 0
	}
	step := FirstLagStep
	for step < d && step < MaxLag {
		step *= 2
	}
	return min(step, MaxLag)
}

// StepProgress is the progress to store for a reported one over the stored
// one: each origin's lag stepped by StepLag from what is stored (unknown and
// new origins as reported). Both may be nil; the result is nil when reported
// is.
func StepProgress(stored, reported map[string]Progress) map[string]Progress {
	if reported == nil {
		return nil
	}
	out := make(map[string]Progress, len(reported))
	for origin, p := range reported {
		old, ok := stored[origin]
		if p.Unknown || !ok || old.Unknown {
			out[origin] = Progress{LagMS: ceilLagStep(p.Lag()).Milliseconds(), Unknown: p.Unknown}
			if p.Unknown {
				out[origin] = Progress{Unknown: true}
			}
			continue
		}
		out[origin] = Progress{LagMS: StepLag(old.Lag(), p.Lag()).Milliseconds()}
	}
	return out
}

// SameProgress reports whether two progress maps say the same thing; nil
// and empty are the same, as they are in a record's JSON.
func SameProgress(a, b map[string]Progress) bool { return maps.Equal(a, b) }
