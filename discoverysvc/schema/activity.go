package schema

import (
	"fmt"
	"slices"
	"strconv"
	"time"
)

// MaxActivityLen bounds an edge's activity value. etcd refuses requests
// over 1.5 MiB by default; an edge trims its oldest servers to stay below
// this, and a reader ignores anything larger.
const MaxActivityLen = 1 << 20

// activityTimeLayout is RFC 3339 in UTC with milliseconds: precise enough
// for sub-second test intervals, shorter than Go's nanosecond default.
const activityTimeLayout = "2006-01-02T15:04:05.000Z07:00"

// Activity is what one edge publishes under EdgeKey, under its own lease:
// for each server it proxied pinned requests to in the last 10 minutes, how
// many in the last interval and in the last minute, and when it last saw
// one. An edge that dies takes its key with its lease.
type Activity struct {
	// Edge is the edge's id; it equals the id in the key.
	Edge string `json:"edge"`
	// Region is the edge's own region, for operators.
	Region string `json:"region,omitempty"`
	// At is when the edge computed the content.
	At time.Time `json:"at"`
	// IntervalMS is how often the edge publishes, in milliseconds; 0 when
	// it does not say. A request the edge proxied is in its value one
	// interval later at most, which is what a drain's quiet period must
	// wait for at least (see Interval).
	IntervalMS int64 `json:"interval_ms,omitempty"`
	// Servers by server id.
	Servers map[string]ServerActivity `json:"servers"`
}

// ServerActivity is one edge's pinned traffic to one server.
type ServerActivity struct {
	// Pinned is the pinned requests proxied in the edge's last interval.
	Pinned uint64 `json:"pinned"`
	// Minute is the pinned requests proxied in the last minute.
	Minute uint64 `json:"minute,omitempty"`
	// Last is when the edge last saw a pinned request to the server,
	// rounded up to the end of the interval it fell in.
	Last time.Time `json:"last"`
}

// MaxActivityInterval bounds the publishing interval an edge may declare:
// far beyond any sensible activity_interval, and short enough that a
// drain never waits on a number nobody meant.
const MaxActivityInterval = time.Hour

// Interval is how often the edge publishes; 0 when it does not say.
func (a *Activity) Interval() time.Duration {
	return time.Duration(a.IntervalMS) * time.Millisecond
}

// ServerReport is one edge's report about one server: Seen is false when
// the edge has not proxied a pinned request to it lately. Interval is how
// often the edge publishes (Activity.Interval).
type ServerReport struct {
	Edge     string
	Seen     bool
	Server   ServerActivity
	Interval time.Duration
}

// Validate checks an activity value; the error names the bad part.
func (a *Activity) Validate() error {
	if !ValidName(a.Edge) {
		return InvalidName("edge")
	}
	if a.Region != "" && !ValidName(a.Region) {
		return InvalidName("region")
	}
	if a.At.IsZero() {
		return &FieldError{"at", "is required"}
	}
	if a.IntervalMS < 0 || a.IntervalMS > MaxActivityInterval.Milliseconds() {
		return &FieldError{"interval_ms", fmt.Sprintf("must be between 0 and %d", MaxActivityInterval.Milliseconds())}
	}
	for id, s := range a.Servers {
		if !ValidName(id) {
			return &FieldError{"servers", fmt.Sprintf("server id %q "+NameRule, id)}
		}
		if s.Last.IsZero() {
			return &FieldError{"servers", fmt.Sprintf("server %q: last is required", id)}
		}
	}
	return nil
}

// DecodeActivity parses an edge's activity key/value: the edge id in the
// value must equal the one in the key. edgesPrefix is EdgesPrefix(prefix).
func DecodeActivity(edgesPrefix string, key, value []byte) (Activity, error) {
	return decodeValue(activityValue, edgesPrefix, key, value, func(a *Activity) string { return a.Edge })
}

// ActivityOf is DecodeActivity narrowed to what one edge says about server.
func ActivityOf(edgesPrefix string, key, value []byte, server string) (ServerReport, error) {
	a, err := DecodeActivity(edgesPrefix, key, value)
	if err != nil {
		return ServerReport{}, err
	}
	s, ok := a.Servers[server]
	return ServerReport{Edge: a.Edge, Seen: ok, Server: s, Interval: a.Interval()}, nil
}

// AppendServers appends the JSON object of servers, ordered by id so that
// equal content encodes to equal bytes: an edge compares encodings to
// write only what changed.
func AppendServers(b []byte, servers map[string]ServerActivity) []byte {
	ids := make([]string, 0, len(servers))
	for id := range servers {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	b = append(b, '{')
	for i, id := range ids {
		if i > 0 {
			b = append(b, ',')
		}
		b = AppendServer(b, id, servers[id])
	}
	return append(b, '}')
}

// AppendServer appends one "<id>":{...} member of the servers object. ids
// are validated names, so they need no escaping.
func AppendServer(b []byte, id string, s ServerActivity) []byte {
	b = append(b, '"')
	b = append(b, id...)
	b = append(b, `":{"pinned":`...)
	b = strconv.AppendUint(b, s.Pinned, 10)
	if s.Minute != 0 {
		b = append(b, `,"minute":`...)
		b = strconv.AppendUint(b, s.Minute, 10)
	}
	b = append(b, `,"last":"`...)
	b = s.Last.UTC().AppendFormat(b, activityTimeLayout)
	return append(b, `"}`...)
}

// AppendActivity appends the whole activity value, with servers the output
// of AppendServers. edge and region are validated names; interval is the
// edge's publishing interval (0: not said), rounded down to milliseconds.
func AppendActivity(b []byte, edge, region string, interval time.Duration, at time.Time, servers []byte) []byte {
	b = append(b, `{"edge":"`...)
	b = append(b, edge...)
	b = append(b, '"')
	if region != "" {
		b = append(b, `,"region":"`...)
		b = append(b, region...)
		b = append(b, '"')
	}
	b = append(b, `,"at":"`...)
	b = at.UTC().AppendFormat(b, activityTimeLayout)
	b = append(b, '"')
	if ms := interval.Milliseconds(); ms > 0 {
		b = append(b, `,"interval_ms":`...)
		b = strconv.AppendInt(b, ms, 10)
	}
	b = append(b, `,"servers":`...)
	b = append(b, servers...)
	return append(b, '}')
}
