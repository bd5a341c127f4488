package status

import (
	"fmt"
	"io"
	"math"
	"strings"
	"time"
	"unicode/utf8"
)

// MaxTextWidth is the widest line, in columns, that WriteText and
// FormatField write.
const MaxTextWidth = 100

// minTextWidth keeps a narrow terminal from squeezing values to nothing.
const minTextWidth = 40

// valueColumn is where values start, after the label ("master:      ").
const valueColumn = 13

// TextOptions controls WriteText.
type TextOptions struct {
	// Now is the moment ages are measured from ("12:03:04 (12 s ago)").
	// Times are shown in Now's location: time.Now() shows local time. The
	// zero Now shows every time as a UTC date and time, without an age.
	Now time.Time
	// Width is the most columns a line may take: 0 or more than
	// MaxTextWidth means MaxTextWidth; less than 40 means 40.
	Width int
}

func (o TextOptions) width() int {
	switch {
	case o.Width <= 0 || o.Width > MaxTextWidth:
		return MaxTextWidth
	case o.Width < minTextWidth:
		return minTextWidth
	}
	return o.Width
}

// textView writes a report's lines: a label column, then values wrapped
// under the value column.
type textView struct {
	w     io.Writer
	now   time.Time
	width int
}

// WriteText prints the report for a person: one concept a line (or a few,
// indented under the value column), times local with their age, sizes in
// binary units, counts exact, and "unknown" for what is not known. No line
// is wider than opt's width.
func (rep Report) WriteText(w io.Writer, opt TextOptions) {
	t := textView{w: w, now: opt.Now, width: opt.width()}
	t.field("daemon:", or(rep.Daemon, "unknown")+" (role: "+or(rep.Role, "unknown")+")")
	master := or(rep.Stream.Master, "unknown")
	if rep.Stream.MasterServerID != nil {
		master += fmt.Sprintf(" (%s, server_id %d)", or(rep.Stream.Flavor, "unknown flavor"), *rep.Stream.MasterServerID)
	}
	t.field("master:", master)
	t.stream(rep.Stream)
	t.field("received:", rep.Received.text())
	t.field("acked:", rep.Acked.text())
	if rep.Applied != nil {
		t.field("applied:", rep.Applied.text())
	}
	if rep.Applier != nil {
		t.applier(*rep.Applier)
	}
	t.semiSync(rep.SemiSync)
	if rep.Master != nil {
		t.onMaster(*rep.Master)
	} else if rep.Daemon == "running" {
		t.field("on master:", "unknown (the master could not be asked)")
	}
	t.lag(rep.Lag)
	t.field("promotable:", "up to "+rep.SafeToPromote.text())
	if f := rep.Failover; f != nil {
		t.failover(*f, rep.Role)
	}
	if r := rep.Relay; r != nil {
		t.field("relay log:", fmt.Sprintf("%d %s, %s on disk (the live segment is preallocated ahead of its data)",
			r.Segments, plural(r.Segments, "segment", "segments"), FormatBytes(r.Bytes)))
	}
	if s := rep.Serve; s != nil {
		t.serve(*s)
	}
	if rep.CheckpointAt != nil {
		t.field("checkpoint:", "written "+t.at(rep.CheckpointAt))
	}
	for _, c := range rep.TLS {
		t.field("tls:", c.Connection+": "+c.text())
	}
	for _, warn := range rep.Stream.Warnings {
		t.field("warning:", warn)
	}
	for _, line := range rep.Audit {
		t.field("audit:", t.auditLine(line))
	}
	if c := rep.Clone; c != nil {
		line := fmt.Sprintf("%s, started %s: %d/%d tables, %d of ~%d rows, %s copied (updated %s)", c.State, t.at(c.StartedAt),
			c.TablesDone, c.TablesTotal, c.RowsDone, c.RowsTotal, FormatBytes(c.BytesDone), t.at(c.UpdatedAt))
		if c.Error != "" {
			line += "; " + c.Error
		}
		t.field("clone:", line+"; the agent does not stream onto a partial copy")
	}
}

// failover writes the mode and epoch, the last promotion, the detector's
// view and whether a promotion now would be lossless.
func (t textView) failover(f FailoverReport, role string) {
	lines := []string{fmt.Sprintf("mode %s, epoch %d", or(f.Mode, "unknown"), f.Epoch)}
	if p := f.Promotion; p != nil {
		line := "promotion " + p.Step
		if p.UpdatedAt != nil {
			line += " " + t.at(p.UpdatedAt)
		}
		if p.By != "" {
			line += " by " + p.By
		}
		if p.OldMaster != "" {
			line += " over " + p.OldMaster
		}
		lines = append(lines, line)
		if p.Reason != "" {
			lines = append(lines, "reason: "+p.Reason)
		}
		if p.Forced {
			lines = append(lines, "FORCED: promoted although not proven lossless")
		}
		switch {
		case p.Rejoined != "":
			lines = append(lines, "old master rejoined as a replica: "+p.Rejoined)
		case role == "master":
			lines = append(lines, "never streams from the old master again (hotstandby rejoin turns it into a replica)")
		}
	}
	if f.Retrying != "" {
		lines = append(lines, "retrying: "+f.Retrying)
	}
	if f.LastAborted != "" {
		lines = append(lines, "last aborted: "+f.LastAborted)
	}
	if d := f.Detector; d != nil {
		probe := "probe "
		switch {
		case d.ProbeAt == nil:
			probe += "not run yet"
		case d.ProbeOK:
			probe += fmt.Sprintf("ok in %.1f ms %s", d.ProbeMS, t.at(d.ProbeAt))
		default:
			probe += fmt.Sprintf("failed %d in a row %s: %s", d.Failures, t.at(d.ProbeAt), d.ProbeError)
		}
		lines = append(lines, probe)
		if d.StreamDown {
			lines = append(lines, "stream down: "+d.StreamWhy)
		}
		if d.Restart != "" {
			lines = append(lines, d.Restart)
		}
		if d.Witness != "" {
			lines = append(lines, "witness: "+d.Witness)
		}
		if d.Dead {
			lines = append(lines, "MASTER DECLARED DEAD since "+t.at(d.Since))
		}
	}
	if f.OldMasterWatch != "" {
		lines = append(lines, f.OldMasterWatch)
	}
	if role == "standby" || role == "" {
		if f.LosslessNow {
			lines = append(lines, "a promotion now would be lossless")
		} else {
			lines = append(lines, "a promotion now may lose commits: "+or(f.LosslessWhy, "unknown"))
		}
	}
	t.field("failover:", lines...)
}

// stream writes the stream's state, what was last heard from the master,
// the counters since the daemon started, and the last error.
func (t textView) stream(s StreamReport) {
	state := or(s.State, "unknown")
	if s.ConnectedSince != nil && s.State == StateStreaming {
		state += " since " + t.at(s.ConnectedSince)
	}
	lines := []string{state}
	var heard []string
	if s.LastEventAt != nil {
		heard = append(heard, "last event "+t.at(s.LastEventAt))
	}
	if s.LastHeartbeat != nil {
		heard = append(heard, "last heartbeat "+t.at(s.LastHeartbeat))
	}
	if len(heard) > 0 {
		lines = append(lines, strings.Join(heard, ", "))
	}
	if s.Events != nil || s.Bytes != nil || s.Reconnects != nil {
		bytes := "unknown"
		if s.Bytes != nil {
			bytes = formatUnits(float64(*s.Bytes), byteUnits)
		}
		lines = append(lines, fmt.Sprintf("received %s events, %s; %s reconnects", count(s.Events), bytes, count(s.Reconnects)))
	}
	if s.SilentSince != nil {
		lines = append(lines, "connected, master sends nothing since "+t.at(s.SilentSince))
		if s.MasterDumpThread != "" {
			lines = append(lines, "master's view of the dump thread: "+s.MasterDumpThread)
		}
	}
	t.field("stream:", lines...)
	if s.LastError != "" {
		t.field("last error:", t.event(s.LastErrorAt, s.LastError))
	}
}

func (t textView) applier(ap ApplierReport) {
	line := or(ap.State, "unknown") + " on standby " + or(ap.Standby, "unknown")
	if ap.Transactions != nil {
		line += fmt.Sprintf(", %d transactions applied", *ap.Transactions)
	}
	lines := []string{line}
	if ap.LastAppliedAt != nil {
		lines = append(lines, "last applied "+t.at(ap.LastAppliedAt))
	}
	if ap.Mode == "replica" && ap.State == "stopped" {
		lines = append(lines, "mode replica: drained for the promotion; the standby replicates from nothing (STOP SLAVE; RESET SLAVE ALL)")
	} else if ap.Mode == "replica" {
		lines = append(lines, fmt.Sprintf("mode replica: the standby replicates from %s with %d parallel threads (IO thread %s, SQL thread %s)",
			or(ap.Source, "(not yet listening)"), ap.ParallelThreads, or(ap.IOThread, "unknown"), or(ap.SQLThread, "unknown")))
		if ap.LastIOError != "" {
			lines = append(lines, "IO thread: "+ap.LastIOError)
		}
	}
	t.field("applier:", lines...)
	if ap.LastError != "" {
		t.field("apply error:", ap.LastError)
	}
	if ap.FailedGTID != "" {
		t.field("failed gtid:", ap.FailedGTID+" (hotstandby skip --gtid "+ap.FailedGTID+" skips it)")
	}
	for _, g := range ap.Errant {
		t.field("ERRANT:", g+" was written on the standby by something other than the agent")
	}
	for _, w := range ap.Warnings {
		t.field("warning:", w)
	}
}

func (t textView) semiSync(s SemiSyncReport) {
	line := "off"
	if s.Enabled {
		line = "on"
		if s.AcksSent != nil {
			line += fmt.Sprintf(", %d ACKs sent", *s.AcksSent)
		}
		if s.LastAckAt != nil {
			line += ", last at " + t.at(s.LastAckAt)
		}
	}
	lines := []string{line}
	switch {
	case s.ProvenAt != nil && (s.BreachAt == nil || s.ProvenAt.After(*s.BreachAt)):
		lines = append(lines, "lossless: every commit waited for our ACK, proven "+t.at(s.ProvenAt))
	case s.BreachAt != nil:
		lines = append(lines, "NOT proven lossless since "+t.at(s.BreachAt)+": "+s.Breach)
	case s.Enabled:
		lines = append(lines, "lossless: not proven yet")
	}
	if s.BreachAt != nil && s.ProvenAt != nil && s.ProvenAt.After(*s.BreachAt) {
		lines = append(lines, "last breach "+t.at(s.BreachAt)+": "+s.Breach)
	}
	t.field("semi-sync:", lines...)
}

// onMaster writes what the monitor measured on the master: its position,
// its semi-sync state, and when it was measured. The fallback warning
// starts a line of its own, so that it is never split.
func (t textView) onMaster(m MasterReport) {
	lines := []string{"position " + m.Position.text()}
	if m.SemiSync != "" {
		line := "semi-sync " + m.SemiSync
		if m.SemiSyncSince != nil {
			line += " since " + t.at(m.SemiSyncSince)
		}
		lines = append(lines, line)
		if m.SemiSync == "OFF" {
			lines = append(lines, "fell back to asynchronous: a failover now may lose committed transactions")
		}
	}
	lines = append(lines, "measured "+t.at(TimePtr(m.MeasuredAt)))
	t.field("on master:", lines...)
}

func (t textView) lag(l LagReport) {
	t.field("lag:",
		fmt.Sprintf("received %s behind the master's SHOW MASTER STATUS, %s by the master's clock",
			bytesOrUnknown(l.ReceivedBytes), secondsOrUnknown(l.ReceivedSeconds)),
		fmt.Sprintf("applied %s / %s transactions / %s (by commit timestamps) behind received",
			bytesOrUnknown(l.AppliedBytes), count(l.AppliedTransactions), secondsOrUnknown(l.AppliedSeconds)))
}

// auditLine shows the RFC 3339 time AuditLines puts first as every other
// time is shown; a line without one is shown as it is.
func (t textView) auditLine(line string) string {
	stamp, rest, ok := strings.Cut(line, " ")
	at, err := time.Parse(time.RFC3339, stamp)
	if !ok || err != nil {
		return line
	}
	return t.event(&at, rest)
}

// event is something that happened at a time: "12:03:04 (12 s ago): text".
func (t textView) event(at *time.Time, text string) string {
	if at == nil {
		return text
	}
	return t.at(at) + ": " + text
}

// at shows a time to the second in Now's location, with the date only when
// it is not Now's day, and its age: "12:03:04 (12 s ago)",
// "2026-11-30 12:03:04 (1 d ago)", "12:03:04 (3 s in the future)".
func (t textView) at(p *time.Time) string {
	if p == nil {
		return "unknown"
	}
	if t.now.IsZero() {
		return p.UTC().Format(time.DateTime) + " UTC"
	}
	at := p.In(t.now.Location())
	s := at.Format(time.TimeOnly)
	if y, m, d := at.Date(); y != t.now.Year() || m != t.now.Month() || d != t.now.Day() {
		s = at.Format(time.DateTime)
	}
	age := t.now.Sub(at)
	if age < 0 {
		return s + " (" + FormatDuration(-age) + " in the future: clock skew?)"
	}
	return s + " (" + FormatDuration(age) + " ago)"
}

// field writes label and its values, one value a line, each wrapped within
// the width and indented under the value column.
func (t textView) field(label string, values ...string) {
	for i, v := range values {
		fmt.Fprint(t.w, FormatField(label, v, t.width))
		if i == 0 {
			label = ""
		}
	}
}

// FormatField renders one field of the status text: the label padded to the
// value column, then value wrapped at spaces and commas (a GTID set breaks
// between domains) onto continuation lines indented under the value column,
// every line ending in a newline and no wider than width columns (clamped
// to 40..MaxTextWidth; 0 means MaxTextWidth). A word too long for a line
// is cut. A label wider than the value column pushes the value right.
func FormatField(label, value string, width int) string {
	width = TextOptions{Width: width}.width()
	value = strings.ReplaceAll(value, "\t", " ")
	var b strings.Builder
	prefix := label + strings.Repeat(" ", max(1, valueColumn-utf8.RuneCountInString(label)))
	indent := strings.Repeat(" ", valueColumn)
	for _, para := range strings.Split(value, "\n") {
		for _, line := range wrap(para, max(1, width-utf8.RuneCountInString(prefix))) {
			b.WriteString(strings.TrimRight(prefix+line, " ") + "\n")
			prefix = indent
		}
	}
	return b.String()
}

// wrap breaks s into lines of at most width runes: at the last space (which
// is dropped) or after the last comma that fits, else in the middle of a
// word.
func wrap(s string, width int) []string {
	r := []rune(strings.TrimRight(s, " "))
	var lines []string
	for len(r) > width {
		cut, next := width, width
		for i := width; i > 0; i-- {
			if r[i] == ' ' {
				cut, next = i, i+1
				break
			}
			if r[i-1] == ',' {
				cut, next = i, i
				break
			}
		}
		lines = append(lines, strings.TrimRight(string(r[:cut]), " "))
		r = []rune(strings.TrimLeft(string(r[next:]), " "))
	}
	return append(lines, string(r))
}

type unit struct {
	size float64
	name string
}

var (
	byteUnits = []unit{{1, "B"}, {1 << 10, "KiB"}, {1 << 20, "MiB"}, {1 << 30, "GiB"},
		{1 << 40, "TiB"}, {1 << 50, "PiB"}, {1 << 60, "EiB"}}
	durationUnits = []unit{{float64(time.Millisecond), "ms"}, {float64(time.Second), "s"},
		{float64(time.Minute), "min"}, {float64(time.Hour), "h"}, {float64(24 * time.Hour), "d"}}
)

// FormatBytes shows a size in binary units: "512 B", "1.5 KiB", "65 MiB".
// Values under 10 of a unit above bytes keep one decimal.
func FormatBytes(n int64) string { return formatUnits(float64(n), byteUnits) }

// FormatDuration shows a duration compactly, by the same rule as
// FormatBytes: "450 ms", "1.5 s", "12 s", "3 min", "2 h", "4 d".
func FormatDuration(d time.Duration) string { return formatUnits(float64(d), durationUnits) }

// formatUnits shows v in the largest unit it is at least one of, rounded:
// to a whole number in the first unit or from 10 up, else to one decimal
// (".0" dropped). A value that rounds up to the next unit is shown in it
// (1023.7 KiB is "1 MiB").
func formatUnits(v float64, units []unit) string {
	if v < 0 {
		return "-" + formatUnits(-v, units)
	}
	i := 0
	for i+1 < len(units) && v >= units[i+1].size {
		i++
	}
	s := roundIn(v, units, i)
	if i+1 < len(units) && s == fmt.Sprint(math.Round(units[i+1].size/units[i].size)) {
		i++
		s = roundIn(v, units, i)
	}
	return s + " " + units[i].name
}

func roundIn(v float64, units []unit, i int) string {
	x := v / units[i].size
	if i == 0 || x >= 9.95 {
		return fmt.Sprintf("%.0f", x)
	}
	return strings.TrimSuffix(fmt.Sprintf("%.1f", x), ".0")
}

func or(s, unknown string) string {
	if s == "" {
		return unknown
	}
	return s
}

// count is an exact count, or "unknown".
func count[T int64 | uint64](p *T) string {
	if p == nil {
		return "unknown"
	}
	return fmt.Sprint(*p)
}

func bytesOrUnknown(p *int64) string {
	if p == nil {
		return "unknown"
	}
	return FormatBytes(*p)
}

// secondsOrUnknown shows a figure measured in whole seconds: "0 s", not
// "0 ms".
func secondsOrUnknown(p *int64) string {
	switch {
	case p == nil:
		return "unknown"
	case *p == 0:
		return "0 s"
	}
	return FormatDuration(time.Duration(*p) * time.Second)
}

// text is a frontier on one line: "mysql-bin.000042:1234  gtid 0-1-42", or
// "unknown".
func (p PosReport) text() string {
	var parts []string
	if p.File != "" && p.Pos != nil {
		parts = append(parts, fmt.Sprintf("%s:%d", p.File, *p.Pos))
	}
	if p.GTID != "" {
		parts = append(parts, "gtid "+p.GTID)
	}
	if len(parts) == 0 {
		return "unknown"
	}
	return strings.Join(parts, "  ")
}

func plural(n int, one, many string) string {
	if n == 1 {
		return one
	}
	return many
}
