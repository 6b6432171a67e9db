package schema

import "math"

// MaxCapacity and MaxLimit bound what a server may declare: larger values
// are a typo or garbage, and a record carrying one is refused like any bad
// record, so that it cannot draw a region's new clients.
const (
	MaxCapacity = 1e9
	MaxLimit    = 1e6
)

// ValidateSize checks a record's declared capacity and limit: each absent
// (0) or a finite number in (0, max].
func ValidateSize(s Server) error {
	if !declared(s.Capacity, MaxCapacity) {
		return &FieldError{"capacity", "must be a number from 0 to 1e9 (0: not declared)"}
	}
	if !declared(s.Limit, MaxLimit) {
		return &FieldError{"limit", "must be a number from 0 to 1e6 (0: no limit)"}
	}
	return nil
}

func declared(v, upper float64) bool {
	return !math.IsNaN(v) && v >= 0 && v <= upper
}
