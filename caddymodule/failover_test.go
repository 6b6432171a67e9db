package caddymodule_test

import (
	"fmt"
	"net/http"
	"strings"
	"testing"

	"github.com/sessionpin/sessionpin/internal/poll"
)

// TestFallbackRegions: with the edge's region empty, new clients and
// /closestToMe go to the first listed fallback region that has an active
// server, not to the least loaded anywhere; a server in the edge's own
// region wins again as soon as there is one.
func TestFallbackRegions(t *testing.T) {
	f := newFixture(t, "\t\tfallback_regions ap-south us-east")
	ap, us, sa := newBackend(t, "ap-1"), newBackend(t, "us-1"), newBackend(t, "sa-1")
	f.reg.put("ap-d", "ap-south", newBackend(t, "ap-d").srv.URL, 0.0, true) // only drains: skipped
	f.reg.put("us-1", "us-east", us.srv.URL, 0.6, false)
	f.reg.put("sa-1", "sa-east", sa.srv.URL, 0.0, false) // least loaded anywhere
	f.waitRouted("us-1", "us-east")
	f.waitRouted("sa-1", "sa-east")

	placed := func(want string) {
		t.Helper()
		poll.Until(t, eventuallyTimeout, "placement on "+want, func() error {
			r := f.do(request{})
			if r.status != http.StatusOK || r.server() != want || r.pinOut() == "" {
				return fmt.Errorf("placed on %q (%d, pin %v)", r.server(), r.status, r.pinOut() != "")
			}
			c := f.do(request{path: "/closestToMe"})
			if !strings.Contains(c.body, `"closestServerId":"`+want+`"`) {
				return fmt.Errorf("closestToMe %d %s", c.status, c.body)
			}
			return nil
		})
	}
	placed("us-1") // ap-south only drains, so the second fallback

	f.reg.put("ap-1", "ap-south", ap.srv.URL, 0.9, false)
	placed("ap-1") // the first fallback, however loaded

	f.reg.put("eu-1", "eu-west", newBackend(t, "eu-1").srv.URL, 0.95, false)
	placed("eu-1") // the edge's own region
}
