package discoverysvc

import (
	"testing"
	"time"

	"github.com/sessionpin/sessionpin/discoverysvc/schema"
	"github.com/sessionpin/sessionpin/internal/etcdtest"
)

// A server's progress is stored in steps: a lag that wavers within its
// step renews the lease only, a lag that grows or turns unknown is written
// at the heartbeat that reports it. Both ways a registry decides are held
// to it: reading etcd, and from its watch-fed copy with no read.
func TestRegistryStoresProgressInSteps(t *testing.T) {
	for _, mode := range []string{"read", "copy"} {
		t.Run(mode, func(t *testing.T) {
			m := etcdtest.Start(t)
			c := etcdtest.NewClient(t, m)
			rc, calls := etcdtest.NewCountingClient(t, m)
			reg := NewRegistry(rc, "")
			if mode == "copy" {
				reg = runningRegistry(t, rc)
				copyAt(t, reg, "", 0)
			}
			ctx := testContext(t)
			lag := func(d time.Duration) schema.Progress { return schema.Progress{LagMS: d.Milliseconds()} }
			beat := func(p map[string]schema.Progress) HeartbeatResult {
				t.Helper()
				srv := testServer("eu-1", "eu", 0.3)
				srv.Origin = "eu"
				srv.Progress = p
				res, err := reg.Heartbeat(ctx, srv, 5*time.Second)
				if err != nil {
					t.Fatal(err)
				}
				if mode == "copy" && res.Written {
					copyAt(t, reg, "eu-1", modRevision(t, c, "eu-1"))
				}
				return res
			}
			stored := func() map[string]schema.Progress {
				t.Helper()
				get, err := c.Get(ctx, schema.ServerKey("", "eu-1"))
				if err != nil || len(get.Kvs) != 1 {
					t.Fatalf("read eu-1: %v %v", get, err)
				}
				srv, err := schema.DecodeServer(schema.ServersPrefix(""), get.Kvs[0].Key, get.Kvs[0].Value)
				if err != nil {
					t.Fatal(err)
				}
				return srv.Progress
			}

			// The first report is rounded up to its step.
			if res := beat(map[string]schema.Progress{"us": lag(1100 * time.Millisecond)}); !res.Created {
				t.Fatalf("first heartbeat: %+v", res)
			}
			if got, want := stored(), map[string]schema.Progress{"us": lag(2 * time.Second)}; !schema.SameProgress(got, want) {
				t.Fatalf("stored %v, want %v", got, want)
			}

			// Wavering within the step and the one below: lease only.
			before, reads := currentRevision(t, c), calls.OK("Range")
			for _, d := range []time.Duration{1900, 1200, 600, 1999, 700} {
				res := beat(map[string]schema.Progress{"us": lag(d * time.Millisecond)})
				if res.Written || res.Server.Progress["us"] != lag(2*time.Second) {
					t.Fatalf("a lag of %dms wavering under 2s was written: %+v", d, res)
				}
			}
			if after := currentRevision(t, c); after != before {
				t.Fatalf("a wavering lag raised the revision %d -> %d", before, after)
			}
			if n := calls.OK("Range") - reads; mode == "copy" && n != 0 {
				t.Fatalf("%d heartbeats read etcd with a current copy", n)
			}

			// Growing past the step: written at once.
			if res := beat(map[string]schema.Progress{"us": lag(2500 * time.Millisecond)}); !res.Written {
				t.Fatalf("a lag grown to 2.5s was not written: %+v", res)
			}
			if got, want := stored(), map[string]schema.Progress{"us": lag(4 * time.Second)}; !schema.SameProgress(got, want) {
				t.Fatalf("stored %v, want %v", got, want)
			}

			// Unknown: written at once, and then held.
			unknown := map[string]schema.Progress{"us": {Unknown: true}}
			if res := beat(unknown); !res.Written || !schema.SameProgress(stored(), unknown) {
				t.Fatalf("unknown progress was not written: %+v, stored %v", res, stored())
			}
			if res := beat(unknown); res.Written {
				t.Fatalf("an unknown progress reported again was written: %+v", res)
			}

			// Caught up again, then a new origin: each written.
			if res := beat(map[string]schema.Progress{"us": lag(0)}); !res.Written || !schema.SameProgress(stored(), map[string]schema.Progress{"us": lag(0)}) {
				t.Fatalf("caught up: %+v, stored %v", res, stored())
			}
			if res := beat(map[string]schema.Progress{"us": lag(0), "ap": lag(300 * time.Millisecond)}); !res.Written {
				t.Fatalf("a new origin was not written: %+v", res)
			}
			// The source gone: the progress leaves the record.
			if res := beat(nil); !res.Written || stored() != nil {
				t.Fatalf("no progress: %+v, stored %v", res, stored())
			}
		})
	}
}
