//go:build race

package placement

// raceEnabled: the race detector is on. It drops sync.Pool's objects at
// random, so a test that counts the allocations of a pooled path runs
// only without it.
const raceEnabled = true
