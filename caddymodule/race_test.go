//go:build race

package caddymodule_test

// raceEnabled: the race detector is on. The gRPC transport test runs only
// without it (make test's second step), because Caddy's HTTP/2 upstream
// path closes a request body while the HTTP/2 client may still read it, a
// race inside Caddy and x/net that no sessionpin code takes part in.
const raceEnabled = true
