#!/usr/bin/env bash
# Proves that the checkout build line of docs/xcaddy.md works: runs it with a
# pinned xcaddy into a temporary directory and checks that the result lists
# our modules.
# Nothing is added to go.mod; xcaddy builds in its own temporary module.
set -euo pipefail
cd "$(dirname "$0")/.."

line='xcaddy build --with github.com/sessionpin/sessionpin=.'
grep -qxF "$line" docs/xcaddy.md || { echo "docs/xcaddy.md no longer contains: $line" >&2; exit 1; }

# xcaddy runs `go get github.com/sessionpin/sessionpin`, which falls back to
# the local replacement only when the proxy says "not found"; some mirrors
# answer 403 for an unpublished module, so end the proxy list in "off".
proxy=$(go env GOPROXY)
proxy=${proxy%,direct}
proxy=${proxy%|direct}
export GOPROXY="$proxy|off"
export GOFLAGS=

out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT

echo "+ $line"
go run github.com/caddyserver/xcaddy/cmd/xcaddy@v0.4.5 build \
	--with "github.com/sessionpin/sessionpin=$PWD" \
	--output "$out/caddy"

mods=$("$out/caddy" list-modules)
for m in session_pin http.handlers.session_pin http.reverse_proxy.upstreams.session_pin; do
	grep -qxF "$m" <<<"$mods" || { echo "xcaddy build lacks module $m" >&2; exit 1; }
done
echo "xcaddy build ok: $("$out/caddy" version)"
