package client

import (
	"time"

	"github.com/sessionpin/sessionpin/discoverysvc/schema"
)

// HeartbeatRequest is the body of PUT /v1/servers/{id}. Pointers tell a
// missing field from a zero one.
type HeartbeatRequest struct {
	// ID, when present, must equal the id in the path.
	ID *string `json:"id,omitempty"`
	// Region of the server. Required.
	Region *string `json:"region"`
	// URL is the server's public URL. Required.
	URL *string `json:"url"`
	// Load is a finite number >= 0, lower is better. Required.
	Load *float64 `json:"load"`
	// Draining servers keep their pinned clients but get no new ones.
	// Default: false.
	Draining *bool `json:"draining,omitempty"`
	// Capacity is how many clients the server holds at load 1, its weight
	// at placement. Default: 0, not declared.
	Capacity *float64 `json:"capacity,omitempty"`
	// Limit is the load at or above which the server takes no new
	// clients. Default: 0, none.
	Limit *float64 `json:"limit,omitempty"`
	// TTL is the lease in whole seconds, 1 to 3600. Default: 10.
	TTL *float64 `json:"ttl,omitempty"`
	// Origin names where the writes made through the server commit (its
	// database primary), for data-aware moves. Default: none, the server
	// takes no part in them.
	Origin *string `json:"origin,omitempty"`
	// Progress is, per origin the server's data replicates from, how far
	// behind it the server's copy is: {"lag_ms": N} or {"unknown": true}.
	// Discovery stores it in steps (schema.StepProgress), so a steady lag
	// renews the lease only. Default: none, no progress source.
	Progress map[string]schema.Progress `json:"progress,omitempty"`
}

// DrainRequest is the optional body of PUT /v1/servers/{id}/drain.
type DrainRequest struct {
	// Reason is a note for other operators, kept with the drain.
	Reason *string `json:"reason"`
}

// ListResponse is the body of GET /v1/servers.
type ListResponse struct {
	Revision int64           `json:"revision"`
	Servers  []schema.Server `json:"servers"`
}

// ErrorResponse is the body of every answer that is not a success.
type ErrorResponse struct {
	Error string `json:"error"`
}

// DrainStatus is the body of GET, and of a successful PUT, on
// /v1/servers/{id}/drain: whether a draining server's pinned clients are
// gone, from the pinned activity every live edge reports.
type DrainStatus struct {
	ID string `json:"id"`
	// Draining is true when an operator drain names the server or its own
	// record says so (its agent is stopping).
	Draining bool `json:"draining"`
	// Since is when the operator drain began; null when only the server's
	// record says it is draining.
	Since  *time.Time `json:"since"`
	Reason string     `json:"reason,omitempty"`
	// Registered is whether the server is in the registry now.
	Registered bool `json:"registered"`
	// PinnedLastMinute is the pinned requests to the server that the
	// reporting edges proxied in the last minute, summed.
	PinnedLastMinute uint64 `json:"pinned_last_minute"`
	// LastPinned is the latest pinned request any reporting edge saw, or
	// null when none has seen one in its memory (10 minutes).
	LastPinned *time.Time `json:"last_pinned"`
	// EdgesReporting is how many live edges publish their activity.
	EdgesReporting int `json:"edges_reporting"`
	// Quiet is the quiet period Drained was judged with.
	Quiet string `json:"quiet"`
	// Drained is true when the server is draining, no reporting edge has
	// seen a pinned request to it for Quiet, and the operator drain (when
	// there is one) began at least Quiet ago.
	Drained bool `json:"drained"`
}
