package discoverysvc

import "strings"

// DefaultPrefix is the etcd key prefix under which the registry lives.
const DefaultPrefix = "/sessionpin/"

// serversDir is the directory below the prefix holding one key per server.
const serversDir = "servers/"

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

// ServersPrefix is the key prefix listing every server of the registry.
func ServersPrefix(prefix string) string { return NormalizePrefix(prefix) + serversDir }

// ServerKey is the etcd key of server id.
func ServerKey(prefix, id string) string { return ServersPrefix(prefix) + id }

// idFromKey returns the id part of a server key, or "" when the key is not a
// direct child of the servers directory.
func idFromKey(serversPrefix, key string) string {
	id, ok := strings.CutPrefix(key, serversPrefix)
	if !ok || strings.Contains(id, "/") {
		return ""
	}
	return id
}
