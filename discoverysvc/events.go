package discoverysvc

import (
	"encoding/json"
	"errors"
	"strconv"

	"github.com/sessionpin/sessionpin/discoverysvc/schema"
	"github.com/sessionpin/sessionpin/discoverysvc/watch"
)

// Event names of GET /v1/events (the SSE "event:" field). Each event's data
// is one JSON object carrying the etcd "revision" it reflects.
const (
	// EventReset starts a full state: forget what you had. Data:
	// {"revision"}.
	EventReset = "reset"
	// EventServerAdded is a server that joined; in a full state, every
	// server. Data: the server record plus "revision".
	EventServerAdded = "server_added"
	// EventServerChanged is a server whose record changed (load, URL,
	// draining, ...). Data: the new record plus "revision".
	EventServerChanged = "server_changed"
	// EventServerRemoved is a server that left: deregistered, or its lease
	// expired. Data: {"revision","id","region"}.
	EventServerRemoved = "server_removed"
	// EventDrainStarted is an operator drain naming a server, registered
	// or not; in a full state, every drain. Data: {"revision","id","since",
	// "reason"?}.
	EventDrainStarted = "drain_started"
	// EventDrainEnded is an operator drain removed. Data: {"revision","id"}.
	EventDrainEnded = "drain_ended"
	// EventActivity is a server's pinned traffic as the edges report it,
	// and whether a draining server is drained. Data: {"revision","id",
	// "pinned_last_minute","last_pinned","edges","drained"}.
	EventActivity = "activity"
	// EventSynced ends a full state; changes follow. Data: {"revision"}.
	EventSynced = "synced"
)

// serverEvent is the data of a server event: the record, flattened, with
// the revision it reflects.
type serverEvent struct {
	Revision int64 `json:"revision"`
	schema.Server
}

type removedEvent struct {
	Revision int64  `json:"revision"`
	ID       string `json:"id"`
	Region   string `json:"region"`
}

type drainEvent struct {
	Revision int64 `json:"revision"`
	schema.Drain
}

type drainEndedEvent struct {
	Revision int64  `json:"revision"`
	ID       string `json:"id"`
}

type activityEvent struct {
	Revision int64  `json:"revision"`
	ID       string `json:"id"`
	PinnedActivity
}

type revisionEvent struct {
	Revision int64 `json:"revision"`
}

// appendEvent appends one SSE event to buf. data is JSON without newlines,
// so it fits one "data:" line.
func appendEvent(buf []byte, name string, data any) []byte {
	b, err := json.Marshal(data)
	if err != nil {
		// Every data type here is plain structs of strings and numbers
		// (validated finite); this cannot happen.
		panic("discoverysvc: encode event: " + err.Error())
	}
	buf = append(buf, "event: "...)
	buf = append(buf, name...)
	buf = append(buf, "\ndata: "...)
	buf = append(buf, b...)
	return append(buf, "\n\n"...)
}

// appendID marks the end of revision rev: the browser's EventSource sends
// the last id it saw as Last-Event-ID when it reconnects. Only the last
// event of a revision carries it, so a client cut off halfway through a
// revision resumes before it and gets the whole revision again.
func appendID(buf []byte, rev int64) []byte {
	// An "id:" line alone dispatches no event but sets the last event id;
	// it goes before the final blank line of the revision's last event.
	buf = buf[:len(buf)-1]
	buf = append(buf, "id: "...)
	buf = strconv.AppendInt(buf, rev, 10)
	return append(buf, "\n\n"...)
}

// appendServerChanges appends the events of changes at revision rev.
func appendServerChanges(buf []byte, rev int64, changes []watch.ServerChange) []byte {
	for _, c := range changes {
		switch {
		case c.New == nil:
			buf = appendEvent(buf, EventServerRemoved, removedEvent{Revision: rev, ID: c.ID, Region: c.Old.Region})
		case c.Old == nil:
			buf = appendEvent(buf, EventServerAdded, serverEvent{Revision: rev, Server: c.New.Server})
		default:
			buf = appendEvent(buf, EventServerChanged, serverEvent{Revision: rev, Server: c.New.Server})
		}
	}
	return buf
}

// maxEventIDLen bounds Last-Event-ID: a revision is an int64, at most 19
// digits.
const maxEventIDLen = 19

var errEventID = errors.New("invalid Last-Event-ID: must be an etcd revision, a positive decimal integer, as sent in an event's id")

// ParseEventID parses the Last-Event-ID header of GET /v1/events: an etcd
// revision as this service wrote it in an event's "id:" field, a positive
// decimal integer with no sign, spaces or leading zeros. "" means no id.
func ParseEventID(s string) (rev int64, ok bool, err error) {
	if s == "" {
		return 0, false, nil
	}
	if len(s) > maxEventIDLen || s[0] == '0' {
		return 0, false, errEventID
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return 0, false, errEventID
		}
	}
	rev, err = strconv.ParseInt(s, 10, 64)
	if err != nil {
		return 0, false, errEventID // out of range
	}
	return rev, true, nil
}
