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
	RecoverySeconds float64 `json:"recovery_seconds"`
	LagP50MS        float64 `json:"lag_p50_ms"`
	LagP99MS        float64 `json:"lag_p99_ms"`
	LagSamples      int     `json:"lag_samples"`
	Clients         int     `json:"clients"`
	DurationSeconds float64 `json:"duration_seconds"`
	Phases          []Phase `json:"phases,omitempty"`
	// Newcomers are the new clients that arrived during the run
	// (slow-start); nil in scenarios without them.
	Newcomers *Newcomers `json:"newcomers,omitempty"`
	// Ramps are, for each server restarted while newcomers arrived, its
	// share of its region's new placements in bins from its return.
	Ramps []Ramp `json:"ramps,omitempty"`
	// PeakLoad is the highest load over limit any server reported during
	// the run, from the registry sampled twice a second; nil when no
	// sample was taken.
	PeakLoad *LoadPeak `json:"peak_load,omitempty"`
	Soak     *Soak     `json:"soak,omitempty"`
	Notes    []string  `json:"notes,omitempty"`
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

// Newcomers are the clients that arrived without a pin during a run, each
// placed by its region's edge at its login, worked for a while and left.
type Newcomers struct {
	// PerRegionPerSecond is the arrival rate at each region's edge;
	// StaySeconds how long each stays.
	PerRegionPerSecond float64 `json:"per_region_per_second"`
	StaySeconds        float64 `json:"stay_seconds"`
	// Placed were placed on a server: in their edge's region, or
	// (PlacedElsewhere) in another region, because every server of
	// their own was at its limit or gone.
	Placed          int `json:"placed"`
	PlacedElsewhere int `json:"placed_elsewhere"`
	// Refused logins, by reason.
	Refused map[string]int `json:"refused,omitempty"`
	// WorkErrors are failed requests after the login.
	WorkErrors int `json:"work_errors"`
}

// Ramp is one restarted server's share of its region's new placements,
// bin by bin from its return to the registry.
type Ramp struct {
	Server string `json:"server"`
	Region string `json:"region"`
	// ReturnedAtS is the return, in seconds from the run's start.
	ReturnedAtS float64   `json:"returned_at_s"`
	Bins        []RampBin `json:"bins"`
}

// RampBin is one bin of a Ramp.
type RampBin struct {
	FromS float64 `json:"from_s"` // since the return
	ToS   float64 `json:"to_s"`
	// Placements are the newcomers of the server's region placed in the
	// bin (anywhere); OnServer of them on the server.
	Placements int     `json:"placements"`
	OnServer   int     `json:"on_server"`
	Share      float64 `json:"share"`
	// RampShare is the share slow start gives the server: its capacity
	// times its ramp, over that and its region's other servers'
	// capacities (the ramp's own weight share at equal loads).
	RampShare float64 `json:"ramp_share"`
	// RuleShare is the share the edge's placement rule gives it from the
	// loads, capacities and limits the registry listed at each placement,
	// the ramps, and the edge's own count of the newcomers it placed on
	// each server since that server's last report.
	RuleShare float64 `json:"rule_share"`
	// PeersAtLimit is the share of the bin's placements at which every
	// other server of the region was at its limit by that same estimate:
	// then the server takes every new client, whatever its ramp.
	PeersAtLimit float64 `json:"peers_at_limit"`
}

// LoadPeak is the highest load a server reported, over its limit.
type LoadPeak struct {
	Server string  `json:"server"`
	Load   float64 `json:"load"`
	Limit  float64 `json:"limit"`
	// Ratio is Load over Limit; 0 when no server declared a limit (then
	// Load is the highest load).
	Ratio float64 `json:"ratio"`
	AtS   float64 `json:"at_s"` // seconds from the run's start
	// AtLimitShare is the share of the samples in which some server's
	// reported load was at or above its limit.
	AtLimitShare float64 `json:"at_limit_share"`
	Samples      int     `json:"samples"`
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
	fmt.Fprintln(tw, "scenario\tmode\tworkflows\tcompleted\tstale_steps\tstale_after_move\twrong_server\tmoves (across)\theld\tcatch_up_waits\tunsafe\tcareless\troaming\terrors\trecovery_s\tlag_p50_ms\tlag_p99_ms\tpeak_load/limit\tnewcomers\t")
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
		fmt.Fprintf(tw, "%s\t%s\t%d\t%d\t%d\t%d\t%d\t%d (%d)\t%d\t%d\t%s\t%s\t%s\t%s\t%s\t%.0f\t%.0f\t%s\t%s\t\n", r.Scenario, r.Mode, r.Workflows, r.Completed,
			r.StaleSteps, r.StaleAfterMove, r.WrongServerSteps, r.Moves, r.MovesAcrossRegions, r.HeldMoves, r.CatchUpWaits, unsafe, careless, roaming,
			Errors(r.ErrorsByReason), recovery(r.RecoverySeconds), r.LagP50MS, r.LagP99MS, PeakText(r.PeakLoad), NewcomersText(r.Newcomers))
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

// PeakText is a run's peak load over limit: "1.02 (us-east-1, at limit 12%
// of the time)", or "-" without samples.
func PeakText(p *LoadPeak) string {
	if p == nil {
		return "-"
	}
	if p.Limit == 0 {
		return fmt.Sprintf("load %.2f (%s, no limit)", p.Load, p.Server)
	}
	return fmt.Sprintf("%.2f (%s, at limit %.0f%% of the time)", p.Ratio, p.Server, 100*p.AtLimitShare)
}

// NewcomersText is "placed (elsewhere), refused", or "-" without
// newcomers.
func NewcomersText(n *Newcomers) string {
	if n == nil {
		return "-"
	}
	refused := 0
	for _, v := range n.Refused {
		refused += v
	}
	return fmt.Sprintf("%d (%d elsewhere), %d refused", n.Placed, n.PlacedElsewhere, refused)
}
