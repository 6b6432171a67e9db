package schema

import (
	"bytes"
	"encoding/json"
)

// progressJSON is the JSON form of a Progress with pointers, to tell an
// absent field from a zero one.
type progressJSON struct {
	LagMS   *int64 `json:"lag_ms"`
	Unknown *bool  `json:"unknown"`
}

// UnmarshalJSON reads one origin's progress: an object with "lag_ms" (whole
// milliseconds) or "unknown": true. A null, an empty object, or a lag that
// is not a whole number is an error rather than a zero Progress, because a
// zero Progress means "caught up": a record must never read as caught up by
// omission. Other keys are ignored, as they are in the rest of a record, so
// that a later version may add some.
func (p *Progress) UnmarshalJSON(b []byte) error {
	if t := bytes.TrimLeft(b, " \t\r\n"); len(t) == 0 || t[0] != '{' {
		return &FieldError{"progress", `each origin's progress must be an object: {"lag_ms": N} or {"unknown": true}`}
	}
	var raw progressJSON
	if err := json.Unmarshal(b, &raw); err != nil {
		return &FieldError{"progress", `"lag_ms" must be whole milliseconds and "unknown" a boolean`}
	}
	switch {
	case raw.Unknown != nil && *raw.Unknown:
		*p = Progress{Unknown: true}
		if raw.LagMS != nil {
			p.LagMS = *raw.LagMS // refused by ValidateProgress: an unknown progress has no lag
		}
	case raw.LagMS == nil:
		return &FieldError{"progress", `each origin's progress needs "lag_ms" or "unknown": true`}
	default:
		*p = Progress{LagMS: *raw.LagMS}
	}
	return nil
}
