package schema

import "strings"

// DefaultPrefix is the etcd key prefix under which the registry lives.
const DefaultPrefix = "/sessionpin/"

// Directories below the prefix.
const (
	// serversDir holds one key per server, under the server's lease.
	serversDir = "servers/"
	// drainDir holds one key per operator drain, with no lease: the drain
	// outlives heartbeats, agent restarts and discovery restarts.
	drainDir = "drain/"
	// edgesDir holds one key per edge with its pinned activity, under the
	// edge's own lease.
	edgesDir = "edges/"
)

// NormalizePrefix makes sure a configured prefix ends in a slash, so that
// "/a" and "/a/" name the same registry and "/a" never matches "/ab/…".
func NormalizePrefix(prefix string) string {
	if prefix == "" {
		return DefaultPrefix
	}
	if !strings.HasSuffix(prefix, "/") {
		prefix += "/"
	}
	return prefix
}

// DrainPrefix is the key prefix listing every operator drain.
func DrainPrefix(prefix string) string { return NormalizePrefix(prefix) + drainDir }

// DrainKey is the etcd key of the operator drain of server id.
func DrainKey(prefix, id string) string { return DrainPrefix(prefix) + id }

// EdgesPrefix is the key prefix listing every edge's pinned activity.
func EdgesPrefix(prefix string) string { return NormalizePrefix(prefix) + edgesDir }

// EdgeKey is the etcd key of the pinned activity of edge id.
func EdgeKey(prefix, id string) string { return EdgesPrefix(prefix) + id }

// IDFromKey returns the id part of a key below dir (a server, drain or edge
// prefix), or "" when the key is not a direct child of dir.
func IDFromKey(dir, key string) string {
	id, ok := strings.CutPrefix(key, dir)
	if !ok || strings.Contains(id, "/") {
		return ""
	}
	return id
}
