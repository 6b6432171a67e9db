// Command caddy is Caddy with its standard modules plus the sessionpin
// modules: the binary `xcaddy build --with github.com/sessionpin/sessionpin=.`
// produces, built with plain `go build ./cmd/caddy`.
package main

import (
	caddycmd "github.com/caddyserver/caddy/v2/cmd"

	_ "github.com/caddyserver/caddy/v2/modules/standard"

	_ "github.com/sessionpin/sessionpin"
)

func main() {
	caddycmd.Main()
}
