package discoverysvc

import (
	"embed"
	"io/fs"
	"net/http"
)

// fleetPage holds the fleet page: plain HTML, CSS and JavaScript served as
// they are, with nothing fetched from elsewhere, so it works offline.
//
//go:embed fleetpage
var fleetPage embed.FS

var fleetAssets = func() http.Handler {
	sub, err := fs.Sub(fleetPage, "fleetpage")
	if err != nil {
		panic(err) // the directory is embedded above
	}
	return http.StripPrefix("/fleet/", http.FileServerFS(sub))
}()

// fleetPageCSP allows the page its own script, style and event stream, and
// nothing else: with an admin token typed into it, no injected markup may
// run script or send the token elsewhere.
const fleetPageCSP = "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; " +
	"img-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"

func fleetPageHeaders(w http.ResponseWriter) {
	h := w.Header()
	h.Set("Content-Security-Policy", fleetPageCSP)
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Referrer-Policy", "no-referrer")
	h.Set("Cache-Control", "no-cache")
}

// serveFleetPage serves GET / : the page itself.
func serveFleetPage(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		methodNotAllowed(w, r, http.MethodGet, http.MethodHead)
		return
	}
	fleetPageHeaders(w)
	http.ServeFileFS(w, r, fleetPage, "fleetpage/index.html")
}

// serveFleetAssets serves the page's script and style under /fleet/.
func serveFleetAssets(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		methodNotAllowed(w, r, http.MethodGet, http.MethodHead)
		return
	}
	fleetPageHeaders(w)
	fleetAssets.ServeHTTP(w, r)
}
