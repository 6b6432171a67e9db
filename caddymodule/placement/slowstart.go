package placement

import (
	"math"
	"time"
)

// SlowStart ramps the share of new clients a server takes after it has
// joined, or come back after being gone, as Envoy's slow_start_config does:
// a server that reports load 0 is not the best place for every new client
// of its region, because its caches are cold and its load report is a
// heartbeat behind. Pinned clients are never affected.
type SlowStart struct {
	// Window is how long the ramp lasts; 0 or less turns slow start off.
	Window time.Duration
	// Aggression shapes the ramp: the share grows as
	// (age/window)^(1/Aggression), so 1 is linear and larger values rise
	// faster at the start. 0 or less (or NaN) means 1.
	Aggression float64
	// MinShare is the share the ramp starts from, so that a joining server
	// takes some clients from the first moment and its load report means
	// something. Values outside (0, 1] (or NaN) mean DefaultMinShare.
	MinShare float64
}

// DefaultMinShare is the ramp's starting share when MinShare is not set,
// Envoy's default min_weight_percent.
const DefaultMinShare = 0.1

// Ramp returns a server's slow-start factor in (0, 1] at age since it
// joined: the share of new clients it takes relative to an established
// server of the same capacity and load. A negative age (a clock step) is
// read as 0.
func (s SlowStart) Ramp(age time.Duration) float64 {
	// Mutation testing: age > Window is an equivalent mutant; at the
	// boundary the ramp's own formula gives 1 too, but past the window
	// the early return saves the formula's work on every placement.
	if s.Window <= 0 || age >= s.Window {
		return 1
	}
	minShare := s.MinShare
	if !(minShare > 0 && minShare <= 1) {
		minShare = DefaultMinShare
	}
	f := float64(max(age, 0)) / float64(s.Window)
	if a := s.Aggression; a > 0 && a != 1 && !math.IsInf(a, 1) {
		f = math.Pow(f, 1/a)
	}
	return max(f, minShare)
}
