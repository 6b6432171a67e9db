package caddymodule

import (
	"bytes"
	"fmt"
	"io"
	"net/http"
)

// errRefreshTooLarge rejects refresh bodies the edge will not buffer.
var errRefreshTooLarge = fmt.Errorf("refresh body: larger than %d bytes", maxRefreshBody)

// readRefreshBody reads the refresh body (at most MaxRefreshBody bytes) to
// find the client's inputs, and puts it back so that the app receives it
// byte for byte.
func readRefreshBody(r *http.Request) ([]byte, error) {
	if r.Body == nil || r.Body == http.NoBody {
		return nil, nil
	}
	if r.ContentLength > maxRefreshBody {
		return nil, errRefreshTooLarge
	}
	body, err := io.ReadAll(io.LimitReader(r.Body, maxRefreshBody+1))
	if err != nil {
		return nil, fmt.Errorf("refresh body: %w", err)
	}
	if len(body) > maxRefreshBody {
		return nil, errRefreshTooLarge
	}
	r.Body = &replayedBody{Reader: bytes.NewReader(body), orig: r.Body}
	return body, nil
}

// replayedBody serves the buffered body and closes the original.
type replayedBody struct {
	*bytes.Reader
	orig io.Closer
}

func (b *replayedBody) Close() error { return b.orig.Close() }
