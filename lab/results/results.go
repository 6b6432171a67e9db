// Package results is the lab's output: lab-results.json, which other tools
// read, the table printed at the end, and the chart of failure rate against
// replication lag.
package results

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"sort"
	"strings"
	"text/tabwriter"
)

// Row is one scenario run in one mode.
type Row struct {
	Scenario         string `json:"scenario"`
	Mode             string `json:"mode"`
	Workflows        int    `json:"workflows"`
	Completed        int    `json:"completed"`
	StaleSteps       int    `json:"stale_steps"`
	StaleAfterMove   int    `json:"stale_after_move"`
	WrongServerSteps int    `json:"wrong_server_steps"`
	// StaleAnnounced are the stale steps and stale reads after a move
	// that followed a move the edge announced as unsafe
	// (X-Session-Unsafe-Move): counted in both totals above as well.
	StaleAnnounced int            `json:"stale_announced"`
	ErrorsByReason map[string]int `json:"errors_by_reason"`
	Moves          int            `json:"moves"`
	// MovesAcrossRegions are the moves to a server of another region
	// than the one before: the only moves after which a client reads its
	// data from another copy, so the only ones that can meet data that
	// has not caught up.
	MovesAcrossRegions int `json:"moves_across_regions"`
	// HeldMoves are refreshes the edge answered keeping the client where
	// it was until the server it would move to holds the client's last
	// write (X-Session-Hold: catching_up).
	HeldMoves int `json:"held_moves"`
	// CatchUpWaits are refreshes answered 503 catching_up, each waited out
	// for its Retry-After; CatchUpWaitSeconds is the time so spent.
	CatchUpWaits       int     `json:"catch_up_waits"`
	CatchUpWaitSeconds float64 `json:"catch_up_wait_seconds"`
	// UnsafeMoves is the edges' sessionpin_unsafe_moves_total over the
	// run: moves made before the target held the client's last write,
	// once the catch-up bound had passed. Absent where the edges are not
	// sessionpin's or did not say.
	UnsafeMoves *int `json:"unsafe_moves,omitempty"`
	// CarelessClients never set the critical flag; their counts are in
	// every total above and again, alone, in Careless.
	CarelessClients int     `json:"careless_clients"`
	Careless        *Counts `json:"careless,omitempty"`
	// RoamingClients travel between their region's edge and the next
	// region's; their counts are in every total above and again, alone,
	// in Roaming.
	RoamingClients int     `json:"roaming_clients"`
	Roaming        *Counts `json:"roaming,omitempty"`
	// RecoverySeconds is the time from the fault (or, for a cut, its
	// heal) until every client was served again; -1 when some client
	// was not by the end of the run.
	RecoverySeconds float64  `json:"recovery_seconds"`
	LagP50MS        float64  `json:"lag_p50_ms"`
	LagP99MS        float64  `json:"lag_p99_ms"`
	LagSamples      int      `json:"lag_samples"`
	Clients         int      `json:"clients"`
	DurationSeconds float64  `json:"duration_seconds"`
	Phases          []Phase  `json:"phases,omitempty"`
	Soak            *Soak    `json:"soak,omitempty"`
	Notes           []string `json:"notes,omitempty"`
}

// Counts are one kind of client's share of a run's counts.
type Counts struct {
	Workflows          int `json:"workflows"`
	Completed          int `json:"completed"`
	StaleSteps         int `json:"stale_steps"`
	StaleAfterMove     int `json:"stale_after_move"`
	WrongServerSteps   int `json:"wrong_server_steps"`
	StaleAnnounced     int `json:"stale_announced"`
	Moves              int `json:"moves"`
	MovesAcrossRegions int `json:"moves_across_regions"`
	HeldMoves          int `json:"held_moves"`
	CatchUpWaits       int `json:"catch_up_waits"`
}

// Phase is one step of lag-step.
type Phase struct {
	ApplyDelayMS float64 `json:"apply_delay_ms"`
	LagP50MS     float64 `json:"lag_p50_ms"`
	LagP99MS     float64 `json:"lag_p99_ms"`
	Workflows    int     `json:"workflows"`
	Failed       int     `json:"failed"`
	FailureRate  float64 `json:"failure_rate"`
}

// Soak is the slope of each resource over the soak, per hour.
type Soak struct {
	Samples int                `json:"samples"`
	Slopes  map[string]float64 `json:"slopes_per_hour"`
	// LaterSlopes are the slopes over the later half of the samples: a
	// heap that grows to its working size early and then levels off has
	// a slope over the whole run but none here, where a leak keeps one.
	LaterSlopes map[string]float64 `json:"later_half_slopes_per_hour"`
	First       map[string]float64 `json:"first"`
	Last        map[string]float64 `json:"last"`
	// Series is every sample, seconds from the first.
	Series []SoakSample `json:"series"`
}

// SoakSample is one sample of a soak.
type SoakSample struct {
	Seconds float64            `json:"s"`
	Values  map[string]float64 `json:"values"`
}

// File is lab-results.json.
type File struct {
	Command string `json:"command"`
	Started string `json:"started"`
	Config  any    `json:"config"`
	Runs    []Row  `json:"runs"`
}

// Write writes the file.
func Write(path string, f File) error {
	b, err := json.MarshalIndent(f, "", "  ")
	if err != nil {
		return err
	}
	return os.WriteFile(path, append(b, '\n'), 0o644)
}

// Table prints one line per scenario and mode.
func Table(w io.Writer, rows []Row) {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "scenario\tmode\tworkflows\tcompleted\tstale_steps\tstale_after_move\twrong_server\tmoves (across)\theld\tcatch_up_waits\tunsafe\tcareless\troaming\terrors\trecovery_s\tlag_p50_ms\tlag_p99_ms\t")
	for _, r := range rows {
		unsafe := "-"
		if r.UnsafeMoves != nil {
			unsafe = fmt.Sprint(*r.UnsafeMoves)
		}
		// The careless clients: how many, and their stale steps and
		// stale reads after a move (already in the totals).
		careless := "-"
		if r.Careless != nil {
			careless = fmt.Sprintf("%d: %d/%d", r.CarelessClients, r.Careless.StaleSteps, r.Careless.StaleAfterMove)
		}
		// The roaming clients, likewise.
		roaming := "-"
		if r.Roaming != nil {
			roaming = fmt.Sprintf("%d: %d/%d", r.RoamingClients, r.Roaming.StaleSteps, r.Roaming.StaleAfterMove)
		}
		fmt.Fprintf(tw, "%s\t%s\t%d\t%d\t%d\t%d\t%d\t%d (%d)\t%d\t%d\t%s\t%s\t%s\t%s\t%s\t%.0f\t%.0f\t\n", r.Scenario, r.Mode, r.Workflows, r.Completed,
			r.StaleSteps, r.StaleAfterMove, r.WrongServerSteps, r.Moves, r.MovesAcrossRegions, r.HeldMoves, r.CatchUpWaits, unsafe, careless, roaming,
			Errors(r.ErrorsByReason), recovery(r.RecoverySeconds), r.LagP50MS, r.LagP99MS)
	}
	tw.Flush()
}

// Errors formats errors by reason, most first.
func Errors(m map[string]int) string {
	if len(m) == 0 {
		return "0"
	}
	type kv struct {
		k string
		v int
	}
	var kvs []kv
	for k, v := range m {
		kvs = append(kvs, kv{k, v})
	}
	sort.Slice(kvs, func(i, j int) bool { return kvs[i].v > kvs[j].v || kvs[i].v == kvs[j].v && kvs[i].k < kvs[j].k })
	var parts []string
	for _, e := range kvs {
		parts = append(parts, fmt.Sprintf("%d×%s", e.v, e.k))
	}
	return strings.Join(parts, ", ")
}
