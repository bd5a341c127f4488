package clone

import (
	"fmt"
	"io"
	"time"

	"github.com/vbauerster/mpb/v8"
	"github.com/vbauerster/mpb/v8/decor"
)

// progress sums the tables' counters.
type progress struct {
	tables []*tableProgress
	start  time.Time
}

// totals is the copy's state at one moment.
type totals struct {
	tablesDone     int
	rows, bytes    int64
	rowsEst        int64 // estimated rows of all tables (at least rows)
	rate, byteRate float64
	eta            time.Duration // -1: unknown
	elapsed        time.Duration
	tablesTotal    int
}

func (p *progress) totals(now time.Time) totals {
	t := totals{tablesTotal: len(p.tables), eta: -1, elapsed: now.Sub(p.start)}
	for _, tp := range p.tables {
		r := tp.rows.Load()
		t.rows += r
		t.bytes += tp.bytes.Load()
		if tp.done() {
			t.tablesDone++
			t.rowsEst += r
		} else {
			t.rowsEst += max(tp.t.estRows, r)
		}
	}
	if s := t.elapsed.Seconds(); s > 0 {
		t.rate, t.byteRate = float64(t.rows)/s, float64(t.bytes)/s
	}
	if t.rate > 0 {
		t.eta = time.Duration(float64(t.rowsEst-t.rows) / t.rate * float64(time.Second))
	}
	return t
}

// line is the plain progress line.
func (t totals) line() string {
	eta := "unknown"
	if t.eta >= 0 {
		eta = t.eta.Round(time.Second).String()
	}
	return fmt.Sprintf("clone: %d/%d tables, %d of ~%d rows, %s, %.0f rows/s, %s/s, elapsed %s, ETA %s",
		t.tablesDone, t.tablesTotal, t.rows, t.rowsEst, formatBytes(t.bytes), t.rate, formatBytes(int64(t.byteRate)),
		t.elapsed.Round(time.Second), eta)
}

func formatBytes(n int64) string {
	switch {
	case n >= 1<<30:
		return fmt.Sprintf("%.2f GiB", float64(n)/(1<<30))
	case n >= 1<<20:
		return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20))
	case n >= 1<<10:
		return fmt.Sprintf("%.1f KiB", float64(n)/(1<<10))
	}
	return fmt.Sprintf("%d B", n)
}

// bars draws a bar for the whole copy and one per table being copied, on
// a terminal (mpb).
type bars struct {
	p      *progress
	mp     *mpb.Progress
	total  *mpb.Bar
	tables map[*tableProgress]*mpb.Bar
}

func newBars(w io.Writer, p *progress) *bars {
	b := &bars{p: p, mp: mpb.New(mpb.WithOutput(w), mpb.WithAutoRefresh(), mpb.WithRefreshRate(200*time.Millisecond), mpb.WithWidth(40)),
		tables: map[*tableProgress]*mpb.Bar{}}
	b.total = b.mp.AddBar(1, mpb.BarPriority(1<<30),
		mpb.PrependDecorators(decor.Name("total", decor.WCSyncSpaceR)),
		mpb.AppendDecorators(decor.Any(func(decor.Statistics) string { return b.p.totals(time.Now()).summary() })))
	return b
}

func (t totals) summary() string {
	eta := "?"
	if t.eta >= 0 {
		eta = t.eta.Round(time.Second).String()
	}
	return fmt.Sprintf("%d/%d tables  %d rows  %s  %.0f rows/s  %s/s  ETA %s",
		t.tablesDone, t.tablesTotal, t.rows, formatBytes(t.bytes), t.rate, formatBytes(int64(t.byteRate)), eta)
}

// update moves the bars to the counters.
func (b *bars) update() {
	t := b.p.totals(time.Now())
	b.total.SetTotal(max(t.rowsEst, 1), false)
	b.total.SetCurrent(t.rows)
	for _, tp := range b.p.tables {
		if tp.startedNanos.Load() == 0 {
			continue
		}
		bar := b.tables[tp]
		if bar == nil {
			if tp.done() {
				continue // started and finished between two updates
			}
			start := time.Unix(0, tp.startedNanos.Load())
			bar = b.mp.AddBar(max(tp.t.estRows, 1), mpb.BarRemoveOnComplete(),
				mpb.PrependDecorators(decor.Name(tp.t.String(), decor.WCSyncSpaceR)),
				mpb.AppendDecorators(decor.Any(func(decor.Statistics) string {
					s := time.Since(start).Seconds()
					return fmt.Sprintf("%d rows  %s  %.0f rows/s", tp.rows.Load(), formatBytes(tp.bytes.Load()), float64(tp.rows.Load())/max(s, 0.001))
				})))
			b.tables[tp] = bar
		}
		rows := tp.rows.Load()
		if tp.done() {
			bar.SetTotal(max(rows, 1), true)
			continue
		}
		bar.SetTotal(max(tp.t.estRows, rows+1), false)
		bar.SetCurrent(rows)
	}
}

// finish completes (or aborts) every bar and waits for the last drawing.
func (b *bars) finish(ok bool) {
	b.update()
	for _, bar := range b.tables {
		if !bar.Completed() {
			bar.Abort(false)
		}
	}
	if ok {
		b.total.SetTotal(max(b.total.Current(), 1), true)
	} else {
		b.total.Abort(false)
	}
	b.mp.Wait()
}
