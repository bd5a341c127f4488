package applier

import (
	"strings"
	"testing"
	"time"
)

func TestCheckSettings(t *testing.T) {
	good := standbySettings{LogBin: true, GTIDStrictMode: true, SyncBinlog: 1, FlushAtCommit: 1, ServerID: 2}
	with := func(f func(*standbySettings)) standbySettings { v := good; f(&v); return v }
	for _, tc := range []struct {
		name      string
		v         standbySettings
		master    uint32
		wantFatal []string // the exact lines
		wantWarn  []string
	}{
		{name: "durable and strict", v: good, master: 1},
		{name: "flush at prepare and commit (3) is durable", v: with(func(v *standbySettings) { v.FlushAtCommit = 3 }), master: 1},
		{name: "log_bin off", v: with(func(v *standbySettings) { v.LogBin = false; v.SyncBinlog = 0 }),
			wantFatal: []string{"standby 127.0.0.1:3307: log_bin=OFF: exactly-once apply needs the binary log (its gtid_binlog_state is the applied checkpoint; " +
				"without it a restart applies transactions again); start the standby with log_bin (the applier checks again every 10s)"}},
		{name: "strict mode off", v: with(func(v *standbySettings) { v.GTIDStrictMode = false }),
			wantFatal: []string{"standby 127.0.0.1:3307: gtid_strict_mode=OFF: without it the standby does not refuse a transaction applied twice or out of order; " +
				"SET GLOBAL gtid_strict_mode=ON on the standby and put gtid_strict_mode=ON in its options (the applier checks again every 10s)"}},
		{name: "the master's server_id", v: with(func(v *standbySettings) { v.ServerID = 1 }), master: 1,
			wantFatal: []string{"standby 127.0.0.1:3307: server_id=1: it is the master's server_id"}},
		{name: "server_id while the master's is unknown", v: with(func(v *standbySettings) { v.ServerID = 1 }), master: 0},
		{name: "innodb flush 0", v: with(func(v *standbySettings) { v.FlushAtCommit = 0 }),
			wantFatal: []string{"standby 127.0.0.1:3307: innodb_flush_log_at_trx_commit=0: even a crash of mariadbd"}},
		{name: "power-loss warnings", v: with(func(v *standbySettings) { v.FlushAtCommit = 2; v.SyncBinlog = 0 }),
			wantWarn: []string{
				"standby 127.0.0.1:3307: innodb_flush_log_at_trx_commit=2: a power loss can lose transactions from InnoDB while the binary log keeps their GTIDs, " +
					"and the applier would not apply them again; SET GLOBAL innodb_flush_log_at_trx_commit=1 on the standby and put it in its options",
				"standby 127.0.0.1:3307: sync_binlog=0: a power loss can lose the last transactions from the standby's binary log, the applied checkpoint " +
					"(the applier then refuses to go on, or applies transactions InnoDB kept a second time); SET GLOBAL sync_binlog=1 on the standby and put it in its options"}},
		{name: "sync_binlog 100", v: with(func(v *standbySettings) { v.SyncBinlog = 100 }),
			wantWarn: []string{"standby 127.0.0.1:3307: sync_binlog=100: "}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var fatal, warn []string
			for _, f := range checkSettings("127.0.0.1:3307", tc.v, tc.master, 10*time.Second) {
				if f.Fatal {
					fatal = append(fatal, f.Text)
				} else {
					warn = append(warn, f.Text)
				}
				if f.Variable == "" || f.Value == "" || f.Want == "" || !strings.Contains(f.Text, f.Variable+"="+f.Value+": ") {
					t.Errorf("finding %+v does not name the variable, its value and the value to set", f)
				}
			}
			match(t, "fatal", fatal, tc.wantFatal)
			match(t, "warning", warn, tc.wantWarn)
		})
	}
}

// match checks that got has one line per want, each starting with it.
func match(t *testing.T, what string, got, want []string) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("%s findings %q, want %d", what, got, len(want))
	}
	for i := range want {
		if !strings.HasPrefix(got[i], want[i]) {
			t.Errorf("%s finding\n got %q\nwant %q...", what, got[i], want[i])
		}
	}
}
