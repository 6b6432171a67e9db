package main

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"strconv"
	"sync"
	"time"
)

// client is one keep-alive connection of the load generator. It speaks just
// enough HTTP/1.1 to send a fixed request and skip the response, so that
// the generator spends far less CPU per request than the proxy under test
// (net/http's client costs several times more).
type client struct {
	addr string
	req  []byte
	conn net.Conn
	br   *bufio.Reader
}

// newRequest serialises a GET / with extra header lines.
func newRequest(addr string, extra []string) []byte {
	var b bytes.Buffer
	b.WriteString("GET / HTTP/1.1\r\nHost: " + addr + "\r\nUser-Agent: sessionpin-bench\r\n")
	for _, h := range extra {
		b.WriteString(h + "\r\n")
	}
	b.WriteString("\r\n")
	return b.Bytes()
}

func (c *client) dial() error {
	if c.conn != nil {
		c.conn.Close()
	}
	conn, err := net.Dial("tcp", c.addr)
	if err != nil {
		return err
	}
	c.conn = conn
	if c.br == nil {
		c.br = bufio.NewReaderSize(conn, 16<<10)
	} else {
		c.br.Reset(conn)
	}
	return nil
}

func (c *client) close() {
	if c.conn != nil {
		c.conn.Close()
	}
}

var errMalformed = errors.New("malformed response")

// do sends the request and reads the whole response; it returns the status.
func (c *client) do() (int, error) {
	if c.conn == nil {
		if err := c.dial(); err != nil {
			return 0, err
		}
	}
	if _, err := c.conn.Write(c.req); err != nil {
		c.conn.Close()
		c.conn = nil
		return 0, err
	}
	status, keep, err := c.readResponse()
	if err != nil || !keep {
		c.conn.Close()
		c.conn = nil
	}
	return status, err
}

func (c *client) readResponse() (status int, keepAlive bool, err error) {
	line, err := c.br.ReadSlice('\n')
	if err != nil {
		return 0, false, err
	}
	if len(line) < 12 || !bytes.HasPrefix(line, []byte("HTTP/1.1 ")) {
		return 0, false, fmt.Errorf("%w: status line %q", errMalformed, line)
	}
	status, err = strconv.Atoi(string(line[9:12]))
	if err != nil {
		return 0, false, fmt.Errorf("%w: status line %q", errMalformed, line)
	}
	length, chunked, keepAlive := -1, false, true
	for {
		line, err = c.br.ReadSlice('\n')
		if err != nil {
			return status, false, err
		}
		if len(line) <= 2 {
			break
		}
		k, v, ok := bytes.Cut(line, []byte(":"))
		if !ok {
			return status, false, fmt.Errorf("%w: header %q", errMalformed, line)
		}
		v = bytes.TrimSpace(v)
		switch {
		case bytes.EqualFold(k, []byte("Content-Length")):
			if length, err = strconv.Atoi(string(v)); err != nil {
				return status, false, fmt.Errorf("%w: content-length %q", errMalformed, v)
			}
		case bytes.EqualFold(k, []byte("Transfer-Encoding")):
			chunked = bytes.EqualFold(v, []byte("chunked"))
		case bytes.EqualFold(k, []byte("Connection")):
			keepAlive = !bytes.EqualFold(v, []byte("close"))
		}
	}
	switch {
	case chunked:
		err = c.skipChunked()
	case length >= 0:
		_, err = c.br.Discard(length)
	default:
		return status, false, fmt.Errorf("%w: no length", errMalformed)
	}
	return status, keepAlive, err
}

func (c *client) skipChunked() error {
	for {
		line, err := c.br.ReadSlice('\n')
		if err != nil {
			return err
		}
		hex, _, _ := bytes.Cut(bytes.TrimSpace(line), []byte(";"))
		n, err := strconv.ParseInt(string(hex), 16, 64)
		if err != nil {
			return fmt.Errorf("%w: chunk size %q", errMalformed, line)
		}
		if n == 0 {
			for { // trailers, then the empty line
				line, err = c.br.ReadSlice('\n')
				if err != nil {
					return err
				}
				if len(line) <= 2 {
					return nil
				}
			}
		}
		if _, err := c.br.Discard(int(n) + 2); err != nil {
			return err
		}
	}
}

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
		cs[i] = &client{addr: addr, req: req}
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
