package watch

import (
	"reflect"
	"slices"
	"strings"
)

// ServerChange is one server's difference between two snapshots: Old is
// nil for a server added, New is nil for a server removed.
type ServerChange struct {
	ID  string
	Old *Entry
	New *Entry
}

// Diff lists the servers that differ between old and s, by id. Apply shares
// the id shards it did not touch, so a diff after one watch event compares
// one shard, not the whole fleet. An entry replaced by an equal record (a
// rewrite of the same value) is no change.
func (s *Snapshot) Diff(old *Snapshot) []ServerChange {
	var out []ServerChange
	for i := range s.byID {
		a, b := old.byID[i], s.byID[i]
		if sameMap(a, b) {
			continue
		}
		for id, oe := range a {
			ne := b[id]
			switch {
			case ne == nil:
				out = append(out, ServerChange{ID: id, Old: oe})
			case ne != oe && !ne.Server.Same(oe.Server):
				out = append(out, ServerChange{ID: id, Old: oe, New: ne})
			}
		}
		for id, ne := range b {
			if a[id] == nil {
				out = append(out, ServerChange{ID: id, New: ne})
			}
		}
	}
	slices.SortFunc(out, func(x, y ServerChange) int { return strings.Compare(x.ID, y.ID) })
	return out
}

// sameMap reports whether a and b are the same map (not merely equal).
func sameMap(a, b map[string]*Entry) bool {
	return reflect.ValueOf(a).UnsafePointer() == reflect.ValueOf(b).UnsafePointer()
}
