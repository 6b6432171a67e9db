package agent

import (
	"context"
	"maps"
	"slices"
	"sync"
	"time"

	"go.uber.org/zap"

	"github.com/sessionpin/sessionpin/discoverysvc/schema"
)

// lagReadings is how many of an origin's latest readings the agent reports
// the largest of. A copy fed by an idle primary learns how current it is
// only from the primary's keepalives, so its measured lag saws up between
// two of them and back to 0; the largest of a few readings is the top of
// the saw, steady from one heartbeat to the next, where the last reading
// alone would change the published step at every heartbeat. A lag that
// grows is reported at once, one that shrinks a few heartbeats later.
const lagReadings = 4

// progressReader reads an agent's progress sources and remembers, per
// source, what it needs to report a failing source's origins as unknown
// and to log a failure once rather than at every heartbeat.
type progressReader struct {
	sources []*sourceState
	log     *zap.Logger
	// readings holds each origin's latest known lags, newest last.
	readings map[string][]int64
	tooMany  bool // logged: more origins than a record holds
}

type sourceState struct {
	src     ProgressSource
	known   []string // origins of the last good read, and those known up front
	failing bool
}

func newProgressReader(sources []ProgressSource, log *zap.Logger) *progressReader {
	p := &progressReader{log: log, readings: map[string][]int64{}}
	for _, src := range sources {
		p.sources = append(p.sources, &sourceState{src: src, known: src.Origins()})
	}
	return p
}

// read reads every source at once within timeout and returns the progress
// to report: nil when there is no source.
func (p *progressReader) read(ctx context.Context, timeout time.Duration) map[string]schema.Progress {
	if len(p.sources) == 0 {
		return nil
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	results := make([]map[string]schema.Progress, len(p.sources))
	errs := make([]error, len(p.sources))
	var wg sync.WaitGroup
	for i, s := range p.sources {
		wg.Go(func() { results[i], errs[i] = s.src.Read(ctx) })
	}
	wg.Wait()
	merged := map[string]schema.Progress{}
	for i, s := range p.sources {
		got := results[i]
		if errs[i] != nil {
			got = map[string]schema.Progress{}
			for _, o := range s.known {
				got[o] = schema.Progress{Unknown: true}
			}
		} else {
			// A PostgreSQL source names its origin up front and reads it
			// back: each origin once, in order, for the logs.
			s.known = slices.Sorted(maps.Keys(got))
			for _, o := range s.src.Origins() {
				if !slices.Contains(s.known, o) {
					s.known = append(s.known, o)
				}
			}
		}
		p.note(s, errs[i])
		for o, pr := range got {
			if old, ok := merged[o]; ok {
				pr = worse(old, pr)
			}
			merged[o] = pr
		}
	}
	return p.hold(p.bound(merged))
}

// worse is the progress to report when two sources report on one origin:
// the one that claims less, so that no source can make a copy look more
// current than another source says it is.
func worse(a, b schema.Progress) schema.Progress {
	if a.Unknown || b.Unknown {
		return schema.Progress{Unknown: true}
	}
	return schema.Progress{LagMS: max(a.LagMS, b.LagMS)}
}

// bound keeps at most schema.MaxOrigins origins, the first by name, so
// that the record stays valid; the rest are left out, which counts as not
// caught up.
func (p *progressReader) bound(m map[string]schema.Progress) map[string]schema.Progress {
	if len(m) <= schema.MaxOrigins {
		return m
	}
	names := slices.Sorted(maps.Keys(m))
	if !p.tooMany {
		p.tooMany = true
		p.log.Warn("progress sources report more origins than a record holds; the last by name are left out",
			zap.Int("max", schema.MaxOrigins), zap.Strings("left_out", names[schema.MaxOrigins:]))
	}
	for _, o := range names[schema.MaxOrigins:] {
		delete(m, o)
	}
	return m
}

// hold reports each known lag as the largest of its origin's last
// lagReadings readings. An unknown reading is reported at once and starts
// the origin's readings afresh.
func (p *progressReader) hold(m map[string]schema.Progress) map[string]schema.Progress {
	for o := range p.readings {
		if _, ok := m[o]; !ok {
			delete(p.readings, o)
		}
	}
	for o, pr := range m {
		if pr.Unknown {
			delete(p.readings, o)
			continue
		}
		r := append(p.readings[o], pr.LagMS)
		if len(r) > lagReadings {
			r = r[len(r)-lagReadings:]
		}
		p.readings[o] = r
		m[o] = schema.Progress{LagMS: slices.Max(r)}
	}
	return m
}

// note logs a source's failure when it begins and its recovery when it
// ends: once per change, not at every heartbeat.
func (p *progressReader) note(s *sourceState, err error) {
	switch {
	case err != nil && !s.failing:
		s.failing = true
		p.log.Warn("progress source cannot tell; its origins are reported unknown until it answers",
			zap.String("source", s.src.Name()), zap.Strings("origins", s.known), zap.Error(err))
	case err == nil && s.failing:
		s.failing = false
		p.log.Info("progress source answers again", zap.String("source", s.src.Name()))
	}
}

// progressTimeout bounds one read of the progress sources: they are read
// while the app is probed, and both must be done well before the next
// round is due.
func (r *agentRun) progressTimeout() time.Duration { return r.interval / 2 }

// readProgress starts reading the progress sources and returns a function
// that waits for the read and keeps its result for the heartbeats.
func (r *agentRun) readProgress(ctx context.Context) (wait func()) {
	if len(r.agent.Progress) == 0 {
		return func() {}
	}
	done := make(chan map[string]schema.Progress, 1)
	go func() { done <- r.progress.read(ctx, r.progressTimeout()) }()
	return func() { r.lastProgress = <-done }
}

// closeSources ends the connections sources keep between reads.
func closeSources(sources []ProgressSource) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	for _, src := range sources {
		if c, ok := src.(interface{ Close(context.Context) }); ok {
			c.Close(ctx)
		}
	}
}
