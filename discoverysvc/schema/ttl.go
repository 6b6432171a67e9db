package schema

import (
	"fmt"
	"time"
)

// Lease TTL bounds of a registration.
const (
	// DefaultTTL is the lease TTL of a heartbeat that names none.
	DefaultTTL = 10 * time.Second
	// MinTTL is the shortest lease a server may ask for. etcd may grant a
	// little more (its minimum follows the election timeout).
	MinTTL = 1 * time.Second
	// MaxTTL is the longest lease: a dead server must leave routing within
	// a bounded time.
	MaxTTL = time.Hour
)

// ValidateTTL checks a heartbeat's lease TTL and returns it in whole seconds
// (rounded up, as etcd counts seconds). Zero means DefaultTTL.
func ValidateTTL(ttl time.Duration) (int64, error) {
	if ttl == 0 {
		ttl = DefaultTTL
	}
	if ttl < MinTTL || ttl > MaxTTL {
		return 0, &FieldError{"ttl", fmt.Sprintf("must be between %v and %v", MinTTL, MaxTTL)}
	}
	return int64((ttl + time.Second - 1) / time.Second), nil
}
