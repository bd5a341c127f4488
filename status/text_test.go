package status_test

import (
	"fmt"
	"math"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/hotstandby/hotstandby/status"
)

// zone and now are the fixed clock of these tests: a zone that is not UTC,
// so a time shown in UTC by mistake shows up.
var (
	zone = time.FixedZone("UTC+1", 3600)
	now  = time.Date(2026, 12, 1, 12, 3, 4, 500_000_000, zone)
)

func ptr[T any](v T) *T { return &v }

func TestFormatBytes(t *testing.T) {
	tests := []struct {
		name string
		in   int64
		want string
	}{
		{name: "zero", in: 0, want: "0 B"},
		{name: "bytes", in: 512, want: "512 B"},
		{name: "last byte count", in: 1023, want: "1023 B"},
		{name: "one KiB", in: 1024, want: "1 KiB"},
		{name: "one decimal below 10", in: 1536, want: "1.5 KiB"},
		{name: "just below 10 KiB", in: 10188, want: "9.9 KiB"},
		{name: "rounds up to 10, no decimal", in: 10230, want: "10 KiB"},
		{name: "whole from 10 up", in: 10854, want: "11 KiB"},
		{name: "just below a MiB rounds into MiB", in: 1<<20 - 1, want: "1 MiB"},
		{name: "the issue's relay size", in: 68038967, want: "65 MiB"},
		{name: "GiB with a decimal", in: 1288490189, want: "1.2 GiB"},
		{name: "TiB", in: 1 << 40, want: "1 TiB"},
		{name: "largest", in: math.MaxInt64, want: "8 EiB"},
		{name: "negative", in: -2048, want: "-2 KiB"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := status.FormatBytes(tt.in); got != tt.want {
				t.Errorf("FormatBytes(%d) = %q, want %q", tt.in, got, tt.want)
			}
		})
	}
}

func TestFormatDuration(t *testing.T) {
	tests := []struct {
		name string
		in   time.Duration
		want string
	}{
		{name: "zero", in: 0, want: "0 ms"},
		{name: "below a millisecond", in: 400 * time.Microsecond, want: "0 ms"},
		{name: "milliseconds", in: 450 * time.Millisecond, want: "450 ms"},
		{name: "rounds up into seconds", in: 999_600 * time.Microsecond, want: "1 s"},
		{name: "seconds with a decimal", in: 1500 * time.Millisecond, want: "1.5 s"},
		{name: "seconds", in: 12 * time.Second, want: "12 s"},
		{name: "rounds up into minutes", in: 59_700 * time.Millisecond, want: "1 min"},
		{name: "minutes with a decimal", in: 90 * time.Second, want: "1.5 min"},
		{name: "minutes", in: 3 * time.Minute, want: "3 min"},
		{name: "whole minutes from 10 up", in: 42*time.Minute + 40*time.Second, want: "43 min"},
		{name: "hours", in: 2 * time.Hour, want: "2 h"},
		{name: "rounds up into days", in: 23*time.Hour + 59*time.Minute, want: "1 d"},
		{name: "days", in: 4 * 24 * time.Hour, want: "4 d"},
		{name: "many days", in: 400 * 24 * time.Hour, want: "400 d"},
		{name: "negative", in: -3 * time.Second, want: "-3 s"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := status.FormatDuration(tt.in); got != tt.want {
				t.Errorf("FormatDuration(%v) = %q, want %q", tt.in, got, tt.want)
			}
		})
	}
}

// TestTimeText: times to the second in Now's location, the date only when
// not Now's day, the age, and a time in the future said to be so.
func TestTimeText(t *testing.T) {
	tests := []struct {
		name string
		now  time.Time
		at   time.Time
		want string
	}{
		{name: "milliseconds ago", now: now, at: now.Add(-450 * time.Millisecond), want: "12:03:04 (450 ms ago)"},
		{name: "seconds ago", now: now, at: now.Add(-12 * time.Second), want: "12:02:52 (12 s ago)"},
		{name: "minutes ago", now: now, at: now.Add(-3 * time.Minute), want: "12:00:04 (3 min ago)"},
		{name: "hours ago", now: now, at: now.Add(-2 * time.Hour), want: "10:03:04 (2 h ago)"},
		{name: "yesterday, hours ago", now: now, at: now.Add(-13 * time.Hour), want: "2026-11-30 23:03:04 (13 h ago)"},
		{name: "days ago", now: now, at: now.Add(-4 * 24 * time.Hour), want: "2026-11-27 12:03:04 (4 d ago)"},
		{name: "in the future", now: now, at: now.Add(3 * time.Second), want: "12:03:07 (3 s in the future: clock skew?)"},
		{name: "another zone shown in Now's", now: now, at: time.Date(2026, 12, 1, 11, 0, 0, 0, time.UTC), want: "12:00:00 (3.1 min ago)"},
		{name: "no clock", now: time.Time{}, at: now, want: "2026-12-01 11:03:04 UTC"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rep := status.Report{Daemon: "stopped", CheckpointAt: &tt.at}
			text := render(rep, status.TextOptions{Now: tt.now})
			if want := "checkpoint:  written " + tt.want + "\n"; !strings.Contains(text, want) {
				t.Errorf("want the line %q in:\n%s", want, text)
			}
		})
	}
}

func TestFormatField(t *testing.T) {
	gtids := gtidSet(12)
	tests := []struct {
		name  string
		label string
		value string
		width int
		want  string
	}{
		{name: "fits", label: "master:", value: "db1:3306", want: "master:      db1:3306\n"},
		{name: "empty value", label: "audit:", value: "", want: "audit:\n"},
		{name: "GTID set breaks after commas", label: "received:", value: "gtid " + gtids, width: 60,
			want: "received:    gtid 0-1-1000000,1-101-1000001,2-102-1000002,\n" +
				"             3-103-1000003,4-104-1000004,5-105-1000005,\n" +
				"             6-106-1000006,7-107-1000007,8-108-1000008,\n" +
				"             9-109-1000009,10-110-1000010,11-111-1000011\n"},
		{name: "prose breaks at spaces", label: "warning:", width: 40,
			value: "binlog_row_image is MINIMAL on the master: full images needed",
			want: "warning:     binlog_row_image is MINIMAL\n" +
				"             on the master: full images\n" +
				"             needed\n"},
		{name: "a word too long is cut", label: "last error:", width: 40,
			value: "open /var/lib/hotstandby/relay/segment-000000042.rly: no space",
			want: "last error:  open\n" +
				"             /var/lib/hotstandby/relay/s\n" +
				"             egment-000000042.rly: no\n" +
				"             space\n"},
		{name: "lines of the value stay lines", label: "apply error:", value: "Error 1062\nDuplicate entry '1'",
			want: "apply error: Error 1062\n             Duplicate entry '1'\n"},
		{name: "width above the maximum is the maximum", label: "x:", value: strings.Repeat("a ", 60), width: 500,
			want: "x:           " + strings.TrimSpace(strings.Repeat("a ", 44)) + "\n" +
				"             " + strings.TrimSpace(strings.Repeat("a ", 16)) + "\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := status.FormatField(tt.label, tt.value, tt.width)
			if got != tt.want {
				t.Errorf("got:\n%s\nwant:\n%s", got, tt.want)
			}
			assertWidth(t, got, max(40, min(tt.width, status.MaxTextWidth)))
		})
	}
}

// richReport has every field set, a GTID set of many domains, a long error
// and long warnings: the report the 100-column limit is hardest on.
func richReport() status.Report {
	ago := func(d time.Duration) *time.Time { at := now.Add(-d); return &at }
	gtids := gtidSet(9)
	recv := status.PosReport{File: "mysql-bin.000042", Pos: ptr(uint64(68038967)), GTID: gtids}
	applied := status.PosReport{File: "mysql-bin.000042", Pos: ptr(uint64(1234)), GTID: gtidSet(3)}
	return status.Report{
		Schema: status.ReportSchemaVersion, Daemon: "running", Role: "standby",
		Stream: status.StreamReport{
			State: status.StateStreaming, Master: "db-master-01.prod.example.com:3306", MasterServerID: ptr(uint32(1)),
			Flavor: "mariadb", ConnectedSince: ago(26 * time.Hour), LastEventAt: ago(450 * time.Millisecond),
			LastHeartbeat: ago(4 * time.Second), Events: ptr(uint64(1234567)), Bytes: ptr(uint64(1288490189)),
			Reconnects: ptr(uint64(2)),
			Warnings: []string{
				"binlog_row_image is MINIMAL on the master: the applier needs FULL row images to find rows on the standby; set binlog_row_image = FULL",
				"the master's binlog_expire_logs_seconds (86400) is shorter than the relay log's retention",
			},
		},
		Received: recv,
		Acked:    status.PosReport{File: "mysql-bin.000042", Pos: ptr(uint64(68038967))},
		Applied:  &applied,
		Applier: &status.ApplierReport{
			State: "error", Standby: "db-standby-01.prod.example.com:3306", Transactions: ptr(uint64(987654)),
			LastAppliedAt: ago(3 * time.Minute),
			LastError: "apply 0-1-1000000 at mysql-bin.000042:1234: Error 1062 (23000): Duplicate entry " +
				"'0x6c6f6e67206b6579206f6620612074657374207461626c65' for key 'PRIMARY' on table shop.orders",
			FailedGTID: "0-1-1000000",
			Errant:     []string{"0-2-17"},
		},
		SafeToPromote: recv,
		Master: &status.MasterReport{
			Position: status.PosReport{File: "mysql-bin.000042", Pos: ptr(uint64(68040000)), GTID: gtids},
			SemiSync: "OFF", SemiSyncSince: ago(90 * time.Second), MeasuredAt: *ago(time.Second),
		},
		Lag: status.LagReport{ReceivedBytes: ptr(int64(1033)), AppliedBytes: ptr(int64(68037733)),
			AppliedTransactions: ptr(int64(25)), AppliedSeconds: ptr(int64(12)), ReceivedSeconds: ptr(int64(0))},
		Relay: &status.RelayReport{Segments: 3, Bytes: 201326592},
		SemiSync: status.SemiSyncReport{Enabled: true, AcksSent: ptr(uint64(123456)), LastAckAt: ago(450 * time.Millisecond),
			ProvenAt: ago(92 * time.Second), BreachAt: ago(90 * time.Second),
			Breach: "master fell back to async between 12:01:32 and 12:01:34: 37 commits without ACK (Rpl_semi_sync_master_no_tx +37, no_times +1)"},
		CheckpointAt: ago(time.Second),
		Audit: []string{
			"2026-11-29T09:00:00Z skip: skipped 0-1-999 (Duplicate entry '7' for key 'PRIMARY') by alice@ops-01",
		},
	}
}

func TestWriteTextRich(t *testing.T) {
	want := `daemon:      running (role: standby)
master:      db-master-01.prod.example.com:3306 (mariadb, server_id 1)
stream:      streaming since 2026-11-30 10:03:04 (1.1 d ago)
             last event 12:03:04 (450 ms ago), last heartbeat 12:03:00 (4 s ago)
             received 1234567 events, 1.2 GiB; 2 reconnects
received:    mysql-bin.000042:68038967  gtid 0-1-1000000,1-101-1000001,2-102-1000002,3-103-1000003,
             4-104-1000004,5-105-1000005,6-106-1000006,7-107-1000007,8-108-1000008
acked:       mysql-bin.000042:68038967
applied:     mysql-bin.000042:1234  gtid 0-1-1000000,1-101-1000001,2-102-1000002
applier:     error on standby db-standby-01.prod.example.com:3306, 987654 transactions applied
             last applied 12:00:04 (3 min ago)
apply error: apply 0-1-1000000 at mysql-bin.000042:1234: Error 1062 (23000): Duplicate entry
             '0x6c6f6e67206b6579206f6620612074657374207461626c65' for key 'PRIMARY' on table
             shop.orders
failed gtid: 0-1-1000000 (hotstandby skip --gtid 0-1-1000000 skips it)
ERRANT:      0-2-17 was written on the standby by something other than the agent
semi-sync:   on, 123456 ACKs sent, last at 12:03:04 (450 ms ago)
             NOT proven lossless since 12:01:34 (1.5 min ago): master fell back to async between
             12:01:32 and 12:01:34: 37 commits without ACK (Rpl_semi_sync_master_no_tx +37, no_times
             +1)
on master:   position mysql-bin.000042:68040000  gtid 0-1-1000000,1-101-1000001,2-102-1000002,
             3-103-1000003,4-104-1000004,5-105-1000005,6-106-1000006,7-107-1000007,8-108-1000008
             semi-sync OFF since 12:01:34 (1.5 min ago)
             fell back to asynchronous: a failover now may lose committed transactions
             measured 12:03:03 (1 s ago)
lag:         received 1 KiB behind the master's SHOW MASTER STATUS, 0 s by the master's clock
             applied 65 MiB / 25 transactions / 12 s (by commit timestamps) behind received
promotable:  up to mysql-bin.000042:68038967  gtid 0-1-1000000,1-101-1000001,2-102-1000002,
             3-103-1000003,4-104-1000004,5-105-1000005,6-106-1000006,7-107-1000007,8-108-1000008
relay log:   3 segments, 192 MiB on disk (the live segment is preallocated ahead of its data)
checkpoint:  written 12:03:03 (1 s ago)
warning:     binlog_row_image is MINIMAL on the master: the applier needs FULL row images to find
             rows on the standby; set binlog_row_image = FULL
warning:     the master's binlog_expire_logs_seconds (86400) is shorter than the relay log's
             retention
audit:       2026-11-29 10:00:00 (2.1 d ago): skip: skipped 0-1-999 (Duplicate entry '7' for key
             'PRIMARY') by alice@ops-01
`
	got := render(richReport(), status.TextOptions{Now: now})
	if got != want {
		t.Errorf("got:\n%s\nwant:\n%s", got, want)
	}
	assertWidth(t, got, status.MaxTextWidth)
	// Phrases other tests and people grep for.
	for _, phrase := range []string{"on master:", "fell back to asynchronous", "ERRANT:", "promotable:"} {
		if !strings.Contains(got, phrase) {
			t.Errorf("the text lost %q", phrase)
		}
	}
}

// TestWriteTextWidth: every line of the rich report fits whatever width is
// asked for, down to the narrowest.
func TestWriteTextWidth(t *testing.T) {
	tests := []struct {
		name  string
		width int
		limit int
	}{
		{name: "default", width: 0, limit: 100},
		{name: "wider than the maximum", width: 200, limit: 100},
		{name: "an 80-column terminal", width: 80, limit: 80},
		{name: "narrow", width: 50, limit: 50},
		{name: "narrower than the minimum", width: 10, limit: 40},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := render(richReport(), status.TextOptions{Now: now, Width: tt.width})
			assertWidth(t, got, tt.limit)
			if !strings.Contains(got, "fell back to asynchronous") {
				t.Errorf("the phrase is cut at width %d:\n%s", tt.width, got)
			}
		})
	}
}

func TestWriteTextUnknowns(t *testing.T) {
	tests := []struct {
		name string
		rep  status.Report
		want string
	}{
		{name: "running, nothing measured yet",
			rep: status.Report{Daemon: "running", Role: "standby",
				Stream:  status.StreamReport{State: "connecting", Master: "db1:3306", Bytes: ptr(uint64(0))},
				Applier: &status.ApplierReport{State: "waiting", Standby: "db2:3306"}, Applied: &status.PosReport{},
				SemiSync: status.SemiSyncReport{Enabled: true}},
			want: `daemon:      running (role: standby)
master:      db1:3306
stream:      connecting
             received unknown events, 0 B; unknown reconnects
received:    unknown
acked:       unknown
applied:     unknown
applier:     waiting on standby db2:3306
semi-sync:   on
             lossless: not proven yet
on master:   unknown (the master could not be asked)
lag:         received unknown behind the master's SHOW MASTER STATUS, unknown by the master's clock
             applied unknown / unknown transactions / unknown (by commit timestamps) behind received
promotable:  up to unknown
`},
		{name: "stopped, never ran",
			rep: status.Report{Daemon: "stopped", Role: "standby", Stream: status.StreamReport{State: status.StateStopped}},
			want: `daemon:      stopped (role: standby)
master:      unknown
stream:      stopped
received:    unknown
acked:       unknown
semi-sync:   off
lag:         received unknown behind the master's SHOW MASTER STATUS, unknown by the master's clock
             applied unknown / unknown transactions / unknown (by commit timestamps) behind received
promotable:  up to unknown
`},
		{name: "a stopped stream's error and its time",
			rep: status.Report{Daemon: "running", Role: "standby",
				Stream: status.StreamReport{State: "reconnecting", Master: "db1:3306", MasterServerID: ptr(uint32(7)),
					ConnectedSince: &now, LastError: "dial tcp 10.0.0.1:3306: connect: connection refused",
					LastErrorAt: ptr(now.Add(-2 * time.Second))}},
			want: `daemon:      running (role: standby)
master:      db1:3306 (unknown flavor, server_id 7)
stream:      reconnecting
last error:  12:03:02 (2 s ago): dial tcp 10.0.0.1:3306: connect: connection refused
received:    unknown
acked:       unknown
semi-sync:   off
on master:   unknown (the master could not be asked)
lag:         received unknown behind the master's SHOW MASTER STATUS, unknown by the master's clock
             applied unknown / unknown transactions / unknown (by commit timestamps) behind received
promotable:  up to unknown
`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := render(tt.rep, status.TextOptions{Now: now})
			if got != tt.want {
				t.Errorf("got:\n%s\nwant:\n%s", got, tt.want)
			}
		})
	}
}

func render(rep status.Report, opt status.TextOptions) string {
	var b strings.Builder
	rep.WriteText(&b, opt)
	return b.String()
}

// gtidSet is a MariaDB GTID set of n domains, each from its own server.
func gtidSet(n int) string {
	var parts []string
	for d := range n {
		id := 100 + d
		if d == 0 {
			id = 1
		}
		parts = append(parts, fmt.Sprintf("%d-%d-%d", d, id, 1000000+d))
	}
	return strings.Join(parts, ",")
}

// assertWidth fails for each line of text wider than limit columns.
func assertWidth(t *testing.T, text string, limit int) {
	t.Helper()
	for i, line := range strings.Split(strings.TrimSuffix(text, "\n"), "\n") {
		if n := utf8.RuneCountInString(line); n > limit {
			t.Errorf("line %d is %d columns, more than %d:\n%s", i+1, n, limit, line)
		}
	}
}

// TestWriteTextFailoverRetrying: the person's view says that the automatic
// promotion is being retried and why, and the last aborted promotion.
func TestWriteTextFailoverRetrying(t *testing.T) {
	rep := status.Report{Daemon: "running", Role: "standby", Failover: &status.FailoverReport{Mode: "auto",
		Retrying:    "attempt 2 at 12:00:01.000: promotion refused: pre_promote hook vetoed it",
		LastAborted: "promotion to epoch 1 (by detector, master dead) aborted at 2026-12-07T12:00:00Z: the old master answered and is not fenced"}}
	var b strings.Builder
	rep.WriteText(&b, status.TextOptions{})
	out := b.String()
	for _, want := range []string{"retrying: attempt 2", "pre_promote hook vetoed it", "last aborted: promotion to epoch 1", "not fenced"} {
		if !strings.Contains(out, want) {
			t.Errorf("status text lacks %q:\n%s", want, out)
		}
	}
}
