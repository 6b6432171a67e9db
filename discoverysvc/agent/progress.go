package agent

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"strconv"

	"github.com/sessionpin/sessionpin/discoverysvc/schema"
)

// ProgressSource tells how far the server's copy of the data has caught up
// with each origin it replicates from (see schema.Progress). The agent
// reads every source at each heartbeat, with a deadline well inside the
// interval, and never two reads of one source at once.
type ProgressSource interface {
	// Name says what the source is, for logs; it carries no secret.
	Name() string
	// Origins are the origins the source reports on, when it knows them
	// before reading (one per PostgreSQL connection); nil when its answers
	// name them.
	Origins() []string
	// Read returns the progress per origin. An error means the source
	// could not tell: its origins are then unknown. It must return soon
	// after ctx ends, since the heartbeat waits for it.
	Read(ctx context.Context) (map[string]schema.Progress, error)
}

// MaxProgressOutput bounds what a URL or a command may answer: a few
// origins take a few dozen bytes, and the agent must not be made to
// buffer an arbitrary answer.
const MaxProgressOutput = 64 << 10

// ParseProgressOutput reads the answer of a progress URL or command: one
// JSON object whose keys are origin names and whose values are the lag in
// seconds (a number >= 0) or null when the source cannot tell, e.g.
// {"eu-db": 0, "us-db": 1.5, "ap-db": null}. A lag is rounded up to whole
// milliseconds; one over schema.MaxLag is as good as unknown. Anything else
// is refused whole: output over MaxProgressOutput, not one object, an
// origin that is not a valid name or is given twice, more than
// schema.MaxOrigins origins, a value that is not a number >= 0 or null.
func ParseProgressOutput(out []byte) (map[string]schema.Progress, error) {
	if len(out) > MaxProgressOutput {
		return nil, fmt.Errorf("output over %d bytes", MaxProgressOutput)
	}
	dec := json.NewDecoder(bytes.NewReader(out))
	dec.UseNumber()
	if tok, err := dec.Token(); err != nil || tok != json.Delim('{') {
		return nil, errors.New(`output must be one JSON object: {"<origin>": <lag seconds> | null}`)
	}
	progress := map[string]schema.Progress{}
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return nil, fmt.Errorf("malformed JSON: %w", err)
		}
		origin, _ := tok.(string)
		if !schema.ValidName(origin) {
			return nil, fmt.Errorf("origin %q %s", origin, schema.NameRule)
		}
		if _, dup := progress[origin]; dup {
			return nil, fmt.Errorf("origin %q given more than once", origin)
		}
		if len(progress) == schema.MaxOrigins {
			return nil, fmt.Errorf("more than %d origins", schema.MaxOrigins)
		}
		tok, err = dec.Token()
		if err != nil {
			return nil, fmt.Errorf("malformed JSON: %w", err)
		}
		switch v := tok.(type) {
		case nil:
			progress[origin] = schema.Progress{Unknown: true}
		case json.Number:
			secs, err := strconv.ParseFloat(string(v), 64)
			if err != nil || math.IsNaN(secs) || math.IsInf(secs, 0) || secs < 0 {
				return nil, fmt.Errorf("origin %q: lag %s is not a number of seconds >= 0", origin, v)
			}
			progress[origin] = progressOf(secs)
		default:
			return nil, fmt.Errorf("origin %q: lag must be a number of seconds >= 0, or null", origin)
		}
	}
	if tok, err := dec.Token(); err != nil || tok != json.Delim('}') {
		return nil, errors.New("malformed JSON: the object does not end")
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, errors.New("unexpected data after the JSON object")
	}
	return progress, nil
}

// progressOf is the progress of a lag measured in seconds: rounded up to
// whole milliseconds, since a bound must never come out too small, and
// unknown beyond schema.MaxLag. A negative lag (the clocks of two machines
// disagreeing) counts as caught up.
func progressOf(secs float64) schema.Progress {
	if math.IsNaN(secs) || secs > schema.MaxLag.Seconds() {
		return schema.Progress{Unknown: true}
	}
	return schema.Progress{LagMS: int64(math.Ceil(max(secs, 0) * 1000))}
}
