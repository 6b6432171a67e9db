// Package sessionpin is the module root. It blank-imports the Caddy plugin so
// that `xcaddy build --with github.com/sessionpin/sessionpin=.` plugs the
// session_pin modules into Caddy (see xcaddy.md).
package sessionpin

import (
	_ "github.com/sessionpin/sessionpin/caddymodule"
)
