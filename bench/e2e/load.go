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

// client is one keep-alive connection of the load generator and the
// requests it sends in turn: one per simulated client it carries (its pin
// or cookie), so that a connection can stand for many clients.
type client struct {
	reqs [][]byte
	next int
	conn rawhttp.Conn
}

// newRequest serialises a GET / with extra header lines.
func newRequest(addr string, extra []string) []byte {
	return rawhttp.Request("GET", addr, "/", extra, nil)
}

func (c *client) do() (int, error) {
	req := c.reqs[c.next]
	c.next = (c.next + 1) % len(c.reqs)
	return c.conn.Do(req)
}

func (c *client) close() { c.conn.Close() }

// result is what one load run measured.
type result struct {
	ok, failed uint64 // 2xx responses; other statuses and transport errors
	elapsed    time.Duration
	hist       histogram
	firstErr   string
}

// newClients returns one connection per list of requests; connections
// stay open between runs, as a real client's would between bursts.
func newClients(addr string, reqs [][][]byte) []*client {
	cs := make([]*client, len(reqs))
	for i, r := range reqs {
		cs[i] = &client{reqs: r, conn: rawhttp.Conn{Addr: addr}}
	}
	return cs
}

// runLoad drives every client over its keep-alive connection for d and
// merges their counts. A request that does not get a 2xx counts as failed
// and is not in the histogram.
func runLoad(ctx context.Context, clients []*client, d time.Duration) *result {
	ctx, cancel := context.WithTimeout(ctx, d)
	defer cancel()
	return drive(ctx, clients, false)
}

// runPass sends every request of every client once: each simulated client
// makes its first request, as before a measurement of clients the edge
// has already seen.
func runPass(ctx context.Context, clients []*client) *result {
	return drive(ctx, clients, true)
}

// drive runs the clients until ctx ends or, with once, until each has sent
// each of its requests once.
func drive(ctx context.Context, clients []*client, once bool) *result {
	parts := make([]*result, len(clients))
	var wg sync.WaitGroup
	start := time.Now()
	for i, c := range clients {
		parts[i] = &result{}
		wg.Go(func() {
			r := parts[i]
			for n := 0; ctx.Err() == nil && (!once || n < len(c.reqs)); n++ {
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
