package discoverysvc

import (
	"encoding/json"
	"fmt"
)

// maxValueLen bounds a registry value. Records are a few hundred bytes; a
// huge value is someone writing garbage under the prefix, not a server.
const maxValueLen = 64 << 10

// DecodeServer parses an etcd key/value into a Server: the value is JSON
// (unknown fields ignored), the record must validate, and the id in the value
// must equal the id in the key, so a value copied under another key cannot
// impersonate a server. serversPrefix is ServersPrefix(prefix).
func DecodeServer(serversPrefix string, key, value []byte) (Server, error) {
	id := idFromKey(serversPrefix, string(key))
	if id == "" {
		return Server{}, fmt.Errorf("key %q is not a server key under %q", key, serversPrefix)
	}
	if len(value) > maxValueLen {
		return Server{}, fmt.Errorf("server %q: value of %d bytes is over %d", id, len(value), maxValueLen)
	}
	var srv Server
	if err := json.Unmarshal(value, &srv); err != nil {
		return Server{}, fmt.Errorf("server %q: decode value: %w", id, err)
	}
	if err := srv.Validate(); err != nil {
		return Server{}, fmt.Errorf("server %q: %w", id, err)
	}
	if srv.ID != id {
		return Server{}, fmt.Errorf("server %q: value names id %q", id, srv.ID)
	}
	return srv, nil
}

// encodeServer is the etcd value of a validated record.
func encodeServer(srv Server) string {
	b, err := json.Marshal(srv)
	if err != nil { // a validated Server has a finite load and always encodes
		panic(fmt.Sprintf("encode server %q: %v", srv.ID, err))
	}
	return string(b)
}
