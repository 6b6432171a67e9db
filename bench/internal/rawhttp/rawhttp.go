// Package rawhttp is the benchmarks' load-generating HTTP/1.1 client: one
// keep-alive connection that sends prepared request bytes and skips the
// response, so that the generator spends far less CPU per request than the
// server under test (net/http's client costs several times more).
package rawhttp

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"net"
	"strconv"
	"time"
)

// Conn is one keep-alive connection to Addr, dialled on first use and
// again after any failure. Not safe for concurrent use.
type Conn struct {
	Addr string
	// Timeout bounds each Do, when set.
	Timeout time.Duration
	conn    net.Conn
	br      *bufio.Reader
}

// Request serialises an HTTP/1.1 request with extra header lines and an
// optional body (sent with its Content-Length).
func Request(method, host, path string, extra []string, body []byte) []byte {
	var b bytes.Buffer
	b.WriteString(method + " " + path + " HTTP/1.1\r\nHost: " + host + "\r\nUser-Agent: sessionpin-bench\r\n")
	for _, h := range extra {
		b.WriteString(h + "\r\n")
	}
	if body != nil {
		b.WriteString("Content-Length: " + strconv.Itoa(len(body)) + "\r\n")
	}
	b.WriteString("\r\n")
	b.Write(body)
	return b.Bytes()
}

func (c *Conn) dial() error {
	if c.conn != nil {
		c.conn.Close()
	}
	conn, err := net.Dial("tcp", c.Addr)
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

// Close closes the connection, if open.
func (c *Conn) Close() {
	if c.conn != nil {
		c.conn.Close()
		c.conn = nil
	}
}

// ErrMalformed is a response the client cannot read.
var ErrMalformed = errors.New("malformed response")

// Do sends req and reads the whole response; it returns the status.
func (c *Conn) Do(req []byte) (int, error) {
	if c.conn == nil {
		if err := c.dial(); err != nil {
			return 0, err
		}
	}
	if c.Timeout > 0 {
		if err := c.conn.SetDeadline(time.Now().Add(c.Timeout)); err != nil {
			c.Close()
			return 0, err
		}
	}
	if _, err := c.conn.Write(req); err != nil {
		c.Close()
		return 0, err
	}
	status, keep, err := c.readResponse()
	if err != nil || !keep {
		c.Close()
	}
	return status, err
}

func (c *Conn) readResponse() (status int, keepAlive bool, err error) {
	line, err := c.br.ReadSlice('\n')
	if err != nil {
		return 0, false, err
	}
	if len(line) < 12 || !bytes.HasPrefix(line, []byte("HTTP/1.1 ")) {
		return 0, false, fmt.Errorf("%w: status line %q", ErrMalformed, line)
	}
	status, err = strconv.Atoi(string(line[9:12]))
	if err != nil {
		return 0, false, fmt.Errorf("%w: status line %q", ErrMalformed, line)
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
			return status, false, fmt.Errorf("%w: header %q", ErrMalformed, line)
		}
		v = bytes.TrimSpace(v)
		switch {
		case bytes.EqualFold(k, []byte("Content-Length")):
			if length, err = strconv.Atoi(string(v)); err != nil {
				return status, false, fmt.Errorf("%w: content-length %q", ErrMalformed, v)
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
		return status, false, fmt.Errorf("%w: no length", ErrMalformed)
	}
	return status, keepAlive, err
}

func (c *Conn) skipChunked() error {
	for {
		line, err := c.br.ReadSlice('\n')
		if err != nil {
			return err
		}
		hex, _, _ := bytes.Cut(bytes.TrimSpace(line), []byte(";"))
		n, err := strconv.ParseInt(string(hex), 16, 64)
		if err != nil {
			return fmt.Errorf("%w: chunk size %q", ErrMalformed, line)
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
