package schema

import (
	"encoding/json"
	"fmt"
)

// valueKind is one kind of registry value (a server, an operator drain, an
// edge's activity), as its decoding errors name it.
type valueKind struct {
	name   string // "server", in `server "eu-1": ...`
	key    string // "a server key"
	idName string // the value's field that must repeat the key's id
	maxLen int
}

var (
	serverValue   = valueKind{name: "server", key: "a server key", idName: "id", maxLen: maxValueLen}
	drainValue    = valueKind{name: "drain", key: "a drain key", idName: "id", maxLen: maxValueLen}
	activityValue = valueKind{name: "edge", key: "an edge key", idName: "edge", maxLen: MaxActivityLen}
)

// decodeValue parses a registry key/value of kind k below dir: the key must
// be a direct child of dir, the value bounded JSON that validates, and the
// id it names (idOf) equal to the key's, so that a value copied under
// another key cannot pass for that key's owner.
func decodeValue[T any, PT interface {
	*T
	Validate() error
}](k valueKind, dir string, key, value []byte, idOf func(*T) string) (T, error) {
	var zero T
	id := IDFromKey(dir, string(key))
	if id == "" {
		return zero, fmt.Errorf("key %q is not %s under %q", key, k.key, dir)
	}
	if len(value) > k.maxLen {
		return zero, fmt.Errorf("%s %q: value of %d bytes is over %d", k.name, id, len(value), k.maxLen)
	}
	var v T
	if err := json.Unmarshal(value, &v); err != nil {
		return zero, fmt.Errorf("%s %q: decode value: %w", k.name, id, err)
	}
	if err := PT(&v).Validate(); err != nil {
		return zero, fmt.Errorf("%s %q: %w", k.name, id, err)
	}
	if got := idOf(&v); got != id {
		return zero, fmt.Errorf("%s %q: value names %s %q", k.name, id, k.idName, got)
	}
	return v, nil
}
