package schema

import (
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"net/url"
	"strings"
)

// Server is one backend server as stored in the registry. Its JSON form is
// the etcd value under <prefix>servers/<id>; unknown fields written by other
// etcd clients are allowed and ignored.
type Server struct {
	ID       string  `json:"id"`
	Region   string  `json:"region"`
	URL      string  `json:"url"`
	Load     float64 `json:"load"`
	Draining bool    `json:"draining"`
	// Capacity is how many clients the server holds at load 1, its weight
	// at placement; 0 when it declares none.
	Capacity float64 `json:"capacity,omitempty"`
	// Limit is the load at or above which the server takes no new
	// clients; 0 when it declares none.
	Limit float64 `json:"limit,omitempty"`
	// Origin names where the writes made through this server commit (its
	// database primary), for data-aware moves; "" when the server takes no
	// part in them.
	Origin string `json:"origin,omitempty"`
	// Progress is, per origin the server's data replicates from, how far
	// behind that origin the server's copy is; nil when the server has no
	// progress source, which leaves it out of data-aware moves.
	Progress map[string]Progress `json:"progress,omitempty"`
}

// Same reports whether two records say the same thing.
func (s Server) Same(o Server) bool {
	return s.ID == o.ID && s.Region == o.Region && s.URL == o.URL && s.Load == o.Load &&
		s.Draining == o.Draining && s.Capacity == o.Capacity && s.Limit == o.Limit &&
		s.Origin == o.Origin && SameProgress(s.Progress, o.Progress)
}

// FieldError is a validation error that names the offending field, so the
// HTTP API can answer with {"error": "..."} that tells the caller what to fix.
type FieldError struct {
	Field  string
	Reason string
}

func (e *FieldError) Error() string { return fmt.Sprintf("invalid %s: %s", e.Field, e.Reason) }

// maxNameLen bounds ids and regions; they appear in keys, headers, metrics
// labels and tokens, so they must be short and plain.
const maxNameLen = 64

// NameRule is the rule a server id or region breaks, for error messages.
const NameRule = "must be 1-64 characters of [A-Za-z0-9._-]"

// InvalidName is the error for a field that breaks NameRule.
func InvalidName(field string) *FieldError { return &FieldError{field, NameRule} }

// ValidName reports whether s is a valid server id or region:
// 1–64 characters of [A-Za-z0-9._-], not only dots. "." and ".." are
// refused because an HTTP path cleaner turns /v1/servers/.. into another
// path: such a server could be written to etcd but never managed.
func ValidName(s string) bool {
	if len(s) == 0 || len(s) > maxNameLen {
		return false
	}
	onlyDots := true
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c == '.':
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9', c == '_', c == '-':
			onlyDots = false
		default:
			return false
		}
	}
	return !onlyDots
}

// Validate checks the record against the registry's rules. The
// error is a *FieldError naming the first bad field.
func (s Server) Validate() error {
	if !ValidName(s.ID) {
		return InvalidName("id")
	}
	if !ValidName(s.Region) {
		return InvalidName("region")
	}
	if err := ValidateURL(s.URL); err != nil {
		return &FieldError{"url", err.Error()}
	}
	if math.IsNaN(s.Load) || math.IsInf(s.Load, 0) || s.Load < 0 {
		return &FieldError{"load", "must be a finite number >= 0"}
	}
	if err := ValidateSize(s); err != nil {
		return err
	}
	return ValidateProgress(s)
}

// ValidateURL checks a server's public URL: absolute http or https, a host
// that may be dialled (see checkHost), and nothing after the authority but
// an optional path. Userinfo, query and fragment are refused because the
// edge dials the host and must never carry credentials or client-controlled
// parts along.
func ValidateURL(raw string) error {
	if raw == "" {
		return errors.New("must not be empty")
	}
	if len(raw) > 2048 {
		return errors.New("too long")
	}
	u, err := ParseHTTPURL(raw)
	if err != nil {
		return err
	}
	if u.Host == "" || u.Hostname() == "" {
		return errors.New("must have a host")
	}
	if err := checkHost(u.Hostname()); err != nil {
		return err
	}
	if u.User != nil {
		return errors.New("must not contain user info")
	}
	if u.RawQuery != "" || u.ForceQuery || u.Fragment != "" || u.Opaque != "" {
		return errors.New("must not have a query or fragment")
	}
	if p := u.Port(); p != "" {
		for i := 0; i < len(p); i++ {
			if p[i] < '0' || p[i] > '9' {
				return errors.New("bad port")
			}
		}
	}
	return nil
}

// ParseHTTPURL parses raw as a URL whose scheme is http or https.
func ParseHTTPURL(raw string) (*url.URL, error) {
	u, err := url.Parse(raw)
	if err != nil {
		return nil, errors.New("not a valid URL")
	}
	if u.Scheme != "http" && u.Scheme != "https" {
		return nil, errors.New("scheme must be http or https")
	}
	return u, nil
}

// DialAddress returns host:port for the server's URL, with the scheme's
// default port when the URL has none. The URL must have passed ValidateURL.
func DialAddress(raw string) (string, error) {
	u, err := url.Parse(raw)
	if err != nil {
		return "", err
	}
	port := u.Port()
	if port == "" {
		port = "80"
		if u.Scheme == "https" {
			port = "443"
		}
	}
	host := u.Hostname()
	if host == "" {
		return "", errors.New("no host")
	}
	if strings.Contains(host, ":") {
		return "[" + host + "]:" + port, nil
	}
	return host + ":" + port, nil
}

// maxValueLen bounds a registry value. Records are a few hundred bytes; a
// huge value is someone writing garbage under the prefix, not a server.
const maxValueLen = 64 << 10

// DecodeServer parses an etcd key/value into a Server: the value is JSON
// (unknown fields ignored), the record must validate, and the id in the value
// must equal the id in the key, so a value copied under another key cannot
// impersonate a server. serversPrefix is ServersPrefix(prefix).
func DecodeServer(serversPrefix string, key, value []byte) (Server, error) {
	return decodeValue(serverValue, serversPrefix, key, value, func(s *Server) string { return s.ID })
}

// EncodeServer is the etcd value of a validated record.
func EncodeServer(srv Server) string {
	b, err := json.Marshal(srv)
	if err != nil { // a validated Server has a finite load and always encodes
		panic(fmt.Sprintf("encode server %q: %v", srv.ID, err))
	}
	return string(b)
}

// ServersPrefix is the key prefix listing every server of the registry.
func ServersPrefix(prefix string) string { return NormalizePrefix(prefix) + serversDir }

// ServerKey is the etcd key of server id.
func ServerKey(prefix, id string) string { return ServersPrefix(prefix) + id }
