package discoverysvc_test

import (
	"io"
	"net/http"
	"strings"
	"testing"
)

// TestFleetPageIsSelfContained: the page and its assets come from the
// binary, load nothing from elsewhere, and are served under a policy that
// lets no injected markup run script or send the admin token typed into
// the page anywhere else.
func TestFleetPageIsSelfContained(t *testing.T) {
	f := startFleet(t, fleetOptions{})
	get := func(path string) (*http.Response, string) {
		t.Helper()
		resp, err := http.Get(f.srv.URL + path)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp, string(b)
	}
	for path, ctype := range map[string]string{
		"/":                "text/html",
		"/fleet/fleet.js":  "text/javascript",
		"/fleet/fleet.css": "text/css",
	} {
		resp, body := get(path)
		if resp.StatusCode != http.StatusOK || !strings.HasPrefix(resp.Header.Get("Content-Type"), ctype) {
			t.Fatalf("%s: %d %q", path, resp.StatusCode, resp.Header.Get("Content-Type"))
		}
		csp := resp.Header.Get("Content-Security-Policy")
		for _, want := range []string{"default-src 'none'", "script-src 'self'", "connect-src 'self'", "frame-ancestors 'none'"} {
			if !strings.Contains(csp, want) {
				t.Errorf("%s: Content-Security-Policy %q lacks %q", path, csp, want)
			}
		}
		if strings.Contains(csp, "unsafe") {
			t.Errorf("%s: Content-Security-Policy %q allows unsafe script or style", path, csp)
		}
		if resp.Header.Get("X-Content-Type-Options") != "nosniff" {
			t.Errorf("%s: no nosniff", path)
		}
		for _, ref := range []string{"http://", "https://", "//cdn", "@import"} {
			if strings.Contains(body, ref) {
				t.Errorf("%s refers to %q: the page must work offline", path, ref)
			}
		}
		for _, store := range []string{"localStorage", "sessionStorage", "document.cookie"} {
			if strings.Contains(body, store) {
				t.Errorf("%s uses %s: the admin token must stay in the page's memory", path, store)
			}
		}
	}
	if resp, _ := get("/fleet/../healthz"); resp.StatusCode == http.StatusOK && resp.Header.Get("Content-Security-Policy") != "" {
		t.Fatal("a path out of the page's directory was served as an asset")
	}
	req, _ := http.NewRequest(http.MethodPost, f.srv.URL+"/", nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusMethodNotAllowed {
		t.Fatalf("POST /: %d", resp.StatusCode)
	}
	// Any other path is the API's: its JSON 404, not the page.
	if resp, body := get("/no-such-page"); resp.StatusCode != http.StatusNotFound || !strings.Contains(body, `"error"`) {
		t.Fatalf("/no-such-page: %d %s", resp.StatusCode, body)
	}
}
