package stack

import (
	"context"
	"fmt"
	"net/http"
	"time"

	"github.com/sessionpin/sessionpin/lab/topo"
)

// ServerState is one server as the registry lists it.
type ServerState struct {
	ID       string  `json:"id"`
	Region   string  `json:"region"`
	Load     float64 `json:"load"`
	Capacity float64 `json:"capacity"`
	Limit    float64 `json:"limit"`
	Draining bool    `json:"draining"`
}

// Fleet returns the servers in the registry, as region r's discovery
// replica lists them (GET /v1/servers).
func (s *Stack) Fleet(ctx context.Context, r string) ([]ServerState, error) {
	ctx, cancel := context.WithTimeout(ctx, 3*time.Second)
	defer cancel()
	req, _ := httpGet(ctx, DiscoveryURL(r)+"/v1/servers")
	// Reading the fleet takes a token; the lab holds the admin one.
	req.Header.Set("Authorization", "Bearer "+s.adminToken)
	resp, err := s.HTTP(s.Net.NS(topo.InfraHost(r))).Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("GET /v1/servers from %s: %s", r, resp.Status)
	}
	var body struct {
		Servers []ServerState `json:"servers"`
	}
	if err := decodeJSON(resp.Body, &body); err != nil {
		return nil, err
	}
	return body.Servers, nil
}
