package agent

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"

	"github.com/sessionpin/sessionpin/discoverysvc/schema"
)

// URLSource reads progress from an HTTP GET of a URL that answers 2xx with
// the JSON object ParseProgressOutput reads, for a store the agent has no
// built-in source for.
type URLSource struct {
	url    string
	client *http.Client
}

// NewURLSource returns the source of --progress-url: an absolute http or
// https URL, which may carry a query. client makes the requests; nil means
// one on http.DefaultTransport.
func NewURLSource(rawURL string, client *http.Client) (*URLSource, error) {
	if err := validateHTTPURL(rawURL, true); err != nil {
		return nil, err
	}
	if client == nil {
		client = &http.Client{}
	}
	return &URLSource{url: rawURL, client: client}, nil
}

// Name is the URL.
func (s *URLSource) Name() string { return "url " + s.url }

// Origins is nil: the answers name them.
func (s *URLSource) Origins() []string { return nil }

// Read fetches and parses the URL's answer.
func (s *URLSource) Read(ctx context.Context) (map[string]schema.Progress, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, s.url, nil)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Accept", "application/json")
	resp, err := s.client.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return nil, fmt.Errorf("status %d", resp.StatusCode)
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, MaxProgressOutput+1))
	if err != nil {
		return nil, fmt.Errorf("read answer: %w", err)
	}
	if len(body) > MaxProgressOutput {
		return nil, errors.New("answer over 64 KiB")
	}
	return ParseProgressOutput(body)
}
