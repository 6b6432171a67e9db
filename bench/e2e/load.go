package main

import (
	"context"
	"errors"
	"io"
	"strconv"
	"sync"
	"time"

	"github.com/sessionpin/sessionpin/bench/internal/rawhttp"
)

// client is one simulated client: its request and its keep-alive
// connection.
type client struct {
	req  []byte
	conn rawhttp.Conn
}

// newRequest serialises a GET / with extra header lines.
func newRequest(addr string, extra []string) []byte {
	return rawhttp.Request("GET", addr, "/", extra, nil)
}

func (c *client) do() (int, error) { return c.conn.Do(c.req) }

func (c *client) close() { c.conn.Close() }

// result is what one load run measured.
type result struct {
	ok, failed uint64 // 2xx responses; other statuses and transport errors
	elapsed    time.Duration
	hist       histogram
	firstErr   string
}

// newClients returns one client per request template; their connections
// stay open between runs, as a real client's would between bursts.
func newClients(addr string, reqs [][]byte) []*client {
	cs := make([]*client, len(reqs))
	for i, req := range reqs {
		cs[i] = &client{req: req, conn: rawhttp.Conn{Addr: addr}}
	}
	return cs
}

// runLoad drives every client over its keep-alive connection for d and
// merges their counts. A request that does not get a 2xx counts as failed
// and is not in the histogram.
func runLoad(ctx context.Context, clients []*client, d time.Duration) *result {
	ctx, cancel := context.WithTimeout(ctx, d)
	defer cancel()
	parts := make([]*result, len(clients))
	var wg sync.WaitGroup
	start := time.Now()
	for i, c := range clients {
		parts[i] = &result{}
		wg.Go(func() {
			r := parts[i]
			for ctx.Err() == nil {
				t0 := time.Now()
				status, err := c.do()
				lat := time.Since(t0)
				if err != nil || status < 200 || status > 299 {
					r.failed++
					if r.firstErr == "" {
						if err != nil {
							r.firstErr = err.Error()
						} else {
							r.firstErr = "status " + strconv.Itoa(status)
						}
					}
					if err != nil && !errors.Is(err, io.EOF) {
						time.Sleep(time.Millisecond) // do not spin on a dead server
					}
					continue
				}
				r.ok++
				r.hist.record(lat)
			}
		})
	}
	wg.Wait()
	total := &result{elapsed: time.Since(start)}
	for _, p := range parts {
		total.ok += p.ok
		total.failed += p.failed
		total.hist.merge(&p.hist)
		if total.firstErr == "" {
			total.firstErr = p.firstErr
		}
	}
	return total
}

// add merges o into r.
func (r *result) add(o *result) {
	r.ok += o.ok
	r.failed += o.failed
	r.elapsed += o.elapsed
	r.hist.merge(&o.hist)
	if r.firstErr == "" {
		r.firstErr = o.firstErr
	}
}
