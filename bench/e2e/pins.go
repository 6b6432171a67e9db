package main

import (
	"fmt"
	"math/rand/v2"
	"net/http"
	"runtime"
	"strings"
	"sync"
	"time"

	"github.com/sessionpin/sessionpin/caddymodule/pin"
)

// minter signs pins with an edge's own key, as the edge would have issued
// them to clients' first requests: a many-clients run needs more distinct
// clients than it could place through the edge in reasonable time.
type minter struct {
	keys    *pin.Keyring
	servers []string // the registered server ids, b1..bN
	now     time.Time
	minted  map[int][][]string
}

func newMinter(key pin.KeyConfig, servers int) (*minter, error) {
	k, err := pin.NewKeyring(key, nil, "", "", pin.WithCache(0))
	if err != nil {
		return nil, fmt.Errorf("pin keys: %w", err)
	}
	m := &minter{keys: k, now: time.Now(), minted: map[int][][]string{}}
	for i := range servers {
		m.servers = append(m.servers, fmt.Sprintf("b%d", i+1))
	}
	return m, nil
}

// pin is client i's pin: its server in turn over the registered ones, and
// issued i seconds before the run (a pin's times are whole seconds, so that
// is what makes every client's token distinct), valid for a day after it.
func (m *minter) pin(i int) (string, error) {
	age := time.Duration(i) * time.Second
	return m.keys.Issue(m.servers[i%len(m.servers)], edgeRegion, m.now.Add(-age), age+24*time.Hour)
}

// headers returns the X-Session-Pin header of each of n clients, minted on
// every CPU; the same n again returns the same pins.
func (m *minter) headers(n int) ([][]string, error) {
	if h, ok := m.minted[n]; ok {
		return h, nil
	}
	out := make([][]string, n)
	errs := make([]error, runtime.GOMAXPROCS(0))
	var wg sync.WaitGroup
	for w := range errs {
		wg.Go(func() {
			for i := w; i < n; i += len(errs) {
				tok, err := m.pin(i)
				if err != nil {
					errs[w] = err
					return
				}
				out[i] = []string{"X-Session-Pin: " + tok}
			}
		})
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			return nil, fmt.Errorf("minting pins: %w", err)
		}
	}
	m.minted[n] = out
	return out, nil
}

// spread deals n clients over conns connections in a random order fixed by
// seed: connection j sends clients order[j], order[j+conns], ..., so each
// connection goes through its clients in random order and together they
// visit every client once per pass. With fewer clients than connections,
// clients share connections' turns so that every configuration keeps the
// same number of connections busy.
func spread(n, conns int, seed uint64) [][]int {
	order := rand.New(rand.NewPCG(seed, seed+1)).Perm(n)
	out := make([][]int, conns)
	for j := range max(n, conns) {
		out[j%conns] = append(out[j%conns], order[j%n])
	}
	return out
}

// checkPinned sends one request with a client's headers and makes sure the
// edge routed it on the pin: a pin the edge refused would be placed (and
// answered 200 with a new pin), which would measure the wrong thing.
func checkPinned(url string, headers []string) error {
	req, err := http.NewRequest(http.MethodGet, url+"/", nil)
	if err != nil {
		return err
	}
	for _, h := range headers {
		k, v, _ := strings.Cut(h, ": ")
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || resp.Header.Get("X-Session-Pin") != "" || resp.Header.Get("X-Session-Server") == "" {
		return fmt.Errorf("pinned request not routed on its pin: status %d, new pin %t, server %q",
			resp.StatusCode, resp.Header.Get("X-Session-Pin") != "", resp.Header.Get("X-Session-Server"))
	}
	return nil
}
