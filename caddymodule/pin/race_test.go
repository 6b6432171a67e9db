//go:build race

package pin

// raceEnabled scales down tests whose point is volume, not concurrency:
// the race detector makes each map operation ~50x slower.
const raceEnabled = true
