package discoverysvc

import "strconv"

// scanHeartbeat reads the plain shape of a heartbeat body that agents send
// (one object, each known key once in its exact spelling, strings of
// printable ASCII without escapes, numbers and booleans of the right type)
// in one pass without encoding/json, which decodes a body twice (once into
// the struct, once more to refuse repeated and miscased keys) and is most
// of the API's own CPU per heartbeat. ok is false for anything else, which
// the caller hands to the full decoder: every refusal and every unusual
// but valid body keep exactly the errors and results they had. Whatever it
// accepts, encoding/json decodes to the same request (FuzzScanHeartbeat).
func scanHeartbeat(body []byte) (req HeartbeatRequest, ok bool) {
	// One allocation for all the fields the pointers point into.
	v := new(struct {
		id, region, url string
		load, ttl       float64
		draining        bool
	})
	s := heartbeatScanner{b: body}
	s.space()
	if !s.byte('{') {
		return HeartbeatRequest{}, false
	}
	s.space()
	if !s.byte('}') {
		for {
			key, ok := s.plainString()
			if !ok { // bytes: the switch on them allocates nothing
				return HeartbeatRequest{}, false
			}
			s.space()
			if !s.byte(':') {
				return HeartbeatRequest{}, false
			}
			s.space()
			switch string(key) {
			case "id":
				if req.ID != nil {
					return HeartbeatRequest{}, false
				}
				var b []byte
				b, ok = s.plainString()
				v.id = string(b)
				req.ID = &v.id
			case "region":
				if req.Region != nil {
					return HeartbeatRequest{}, false
				}
				var b []byte
				b, ok = s.plainString()
				v.region = string(b)
				req.Region = &v.region
			case "url":
				if req.URL != nil {
					return HeartbeatRequest{}, false
				}
				var b []byte
				b, ok = s.plainString()
				v.url = string(b)
				req.URL = &v.url
			case "load":
				if req.Load != nil {
					return HeartbeatRequest{}, false
				}
				v.load, ok = s.number()
				req.Load = &v.load
			case "ttl":
				if req.TTL != nil {
					return HeartbeatRequest{}, false
				}
				v.ttl, ok = s.number()
				req.TTL = &v.ttl
			case "draining":
				if req.Draining != nil {
					return HeartbeatRequest{}, false
				}
				v.draining, ok = s.boolean()
				req.Draining = &v.draining
			default:
				return HeartbeatRequest{}, false
			}
			if !ok {
				return HeartbeatRequest{}, false
			}
			s.space()
			if s.byte('}') {
				break
			}
			if !s.byte(',') {
				return HeartbeatRequest{}, false
			}
			s.space()
		}
	}
	s.space()
	if s.i != len(s.b) {
		return HeartbeatRequest{}, false
	}
	return req, true
}

// heartbeatScanner is scanHeartbeat's cursor over the body.
type heartbeatScanner struct {
	b []byte
	i int
}

// space skips JSON whitespace.
func (s *heartbeatScanner) space() {
	for s.i < len(s.b) {
		switch s.b[s.i] {
		case ' ', '\t', '\r', '\n':
			s.i++
		default:
			return
		}
	}
}

// byte consumes c if it is next.
func (s *heartbeatScanner) byte(c byte) bool {
	if s.i < len(s.b) && s.b[s.i] == c {
		s.i++
		return true
	}
	return false
}

// plainString reads a string of printable ASCII with no escape: its bytes
// are then its value, as encoding/json would decode it.
func (s *heartbeatScanner) plainString() ([]byte, bool) {
	if !s.byte('"') {
		return nil, false
	}
	start := s.i
	for s.i < len(s.b) {
		c := s.b[s.i]
		switch {
		case c == '"':
			str := s.b[start:s.i]
			s.i++
			return str, true
		case c < 0x20 || c > 0x7e || c == '\\':
			return nil, false
		}
		s.i++
	}
	return nil, false
}

// number reads a JSON number and parses it as encoding/json does for a
// float64; one out of float64's range is left to the full decoder.
func (s *heartbeatScanner) number() (float64, bool) {
	start := s.i
	s.byte('-')
	switch {
	case s.byte('0'):
	case s.i < len(s.b) && s.b[s.i] >= '1' && s.b[s.i] <= '9':
		s.digits()
	default:
		return 0, false
	}
	if s.byte('.') && !s.digits() {
		return 0, false
	}
	if s.byte('e') || s.byte('E') {
		if !s.byte('+') {
			s.byte('-')
		}
		if !s.digits() {
			return 0, false
		}
	}
	f, err := strconv.ParseFloat(string(s.b[start:s.i]), 64)
	return f, err == nil
}

// digits consumes one or more decimal digits.
func (s *heartbeatScanner) digits() bool {
	start := s.i
	for s.i < len(s.b) && s.b[s.i] >= '0' && s.b[s.i] <= '9' {
		s.i++
	}
	return s.i > start
}

// boolean reads true or false.
func (s *heartbeatScanner) boolean() (bool, bool) {
	rest := s.b[s.i:]
	switch {
	case len(rest) >= 4 && string(rest[:4]) == "true":
		s.i += 4
		return true, true
	case len(rest) >= 5 && string(rest[:5]) == "false":
		s.i += 5
		return false, true
	}
	return false, false
}
