package applier

import (
	"errors"
	"io"
	"log/slog"
	"strings"
	"testing"

	"github.com/hotstandby/hotstandby/binlog"
)

func gtid(t *testing.T, s string) binlog.GTID {
	t.Helper()
	g, err := binlog.ParseGTID(s)
	if err != nil {
		t.Fatal(err)
	}
	return g
}

func lastOf(t *testing.T, state string) map[uint32]binlog.GTID {
	t.Helper()
	st, err := parseGTIDState(state)
	if err != nil {
		t.Fatal(err)
	}
	return st.lastPerDomain()
}

func TestLastPerDomain(t *testing.T) {
	got := lastOf(t, "0-1-100,0-2-101,1-1-7,0-3-50")
	if got[0] != gtid(t, "0-2-101") || got[1] != gtid(t, "1-1-7") || len(got) != 2 {
		t.Fatalf("lastPerDomain = %v", got)
	}
}

func TestCheckCheckpoint(t *testing.T) {
	for _, tc := range []struct {
		name, standby, checkpoint string
		want                      []string // exact lines; none: accepted
	}{
		{name: "no checkpoint (first start)", standby: ""},
		{name: "equal", standby: "0-1-100", checkpoint: "0-1-100"},
		{name: "ahead (applied after the last mirror)", standby: "0-1-120,1-1-5", checkpoint: "0-1-100"},
		{name: "ahead by an errant GTID", standby: "0-1-100,0-2-101", checkpoint: "0-1-101"},
		{name: "behind", standby: "0-1-90", checkpoint: "0-1-100", want: []string{
			"standby 127.0.0.1:3307: gtid_binlog_pos 0-1-90 is behind the agent's applied checkpoint 0-1-100 (domain 0): " +
				"the standby lost transactions the agent applied (restored from an older backup, or commits lost in a crash or power loss); " +
				"rebuild it from a backup or clone at or after 0-1-100"}},
		{name: "empty standby", standby: "", checkpoint: "0-1-100,2-1-3", want: []string{
			"standby 127.0.0.1:3307: gtid_binlog_pos has no GTID in domain 0 and is behind the agent's applied checkpoint 0-1-100 (domain 0): ",
			"standby 127.0.0.1:3307: gtid_binlog_pos has no GTID in domain 2 and is behind the agent's applied checkpoint 2-1-3 (domain 2): "}},
		{name: "one domain behind", standby: "0-1-100,1-1-4", checkpoint: "0-1-100,1-1-5", want: []string{
			"standby 127.0.0.1:3307: gtid_binlog_pos 1-1-4 is behind the agent's applied checkpoint 1-1-5 (domain 1): "}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cp, err := binlog.ParseGTIDSet(binlog.MariaDB, tc.checkpoint)
			if err != nil {
				t.Fatal(err)
			}
			err = checkCheckpoint("127.0.0.1:3307", lastOf(t, tc.standby), cp)
			if len(tc.want) == 0 {
				if err != nil {
					t.Fatalf("refused: %v", err)
				}
				return
			}
			var se *StopError
			if !errors.As(err, &se) || !errors.Is(err, ErrStandbyBehind) {
				t.Fatalf("err = %v, want a StopError for ErrStandbyBehind", err)
			}
			match(t, "checkpoint", se.Lines, tc.want)
		})
	}
}

func TestFollowCheck(t *testing.T) {
	type txn struct {
		gtid string
		skip bool // the standby has it
	}
	at := binlog.FilePos{File: "mysql-bin.000001", Pos: 12345}
	for _, tc := range []struct {
		name    string
		standby string
		txns    []txn
		wantErr string // the exact line, at the last transaction; "" accepted
	}{
		{name: "next after the standby", standby: "0-1-100", txns: []txn{{"0-1-101", false}, {"0-1-102", false}}},
		{name: "skips what the standby has, then follows", standby: "0-1-100", txns: []txn{{"0-1-99", true}, {"0-1-100", true}, {"0-1-101", false}}},
		{name: "fresh standby: nothing to follow", standby: "", txns: []txn{{"0-1-50", false}}},
		{name: "fresh domain next to a followed one", standby: "0-1-100", txns: []txn{{"1-1-40", false}, {"0-1-101", false}}},
		{name: "master jumped, the relay shows the standby's last right before", standby: "0-1-100",
			txns: []txn{{"0-1-100", true}, {"0-1-150", false}}},
		{name: "only the first applied transaction of a domain is checked", standby: "0-1-100",
			txns: []txn{{"0-1-101", false}, {"0-1-150", false}}},
		{name: "at or below the domain's last (errant 0-2-101): left to gtid_strict_mode", standby: "0-1-100,0-2-101",
			txns: []txn{{"0-1-101", false}}},
		{name: "gap", standby: "0-1-100", txns: []txn{{"0-1-150", false}}, wantErr: "standby 127.0.0.1:3307: the next transaction in the relay log for domain 0 " +
			"is 0-1-150 (at mysql-bin.000001:12345) but the standby is at 0-1-100: 49 transactions (seq 101 to 149) are missing from the relay log; " +
			"apply them to the standby from the master's binary log, or rebuild it; only if the master skipped those numbers on purpose " +
			"(gtid_seq_no set forward), mark it on the standby: SET gtid_domain_id=0, server_id=1; SET gtid_seq_no=149; DROP TABLE IF EXISTS mysql.hotstandby_no_such_table"},
		{name: "gap after a relay predecessor the standby does not end with", standby: "0-1-100",
			txns: []txn{{"0-1-90", true}, {"0-1-150", false}}, wantErr: "standby 127.0.0.1:3307: the next transaction in the relay log for domain 0 is 0-1-150"},
		{name: "gap in a second domain", standby: "0-1-100,1-1-10", txns: []txn{{"0-1-101", false}, {"1-1-12", false}},
			wantErr: "standby 127.0.0.1:3307: the next transaction in the relay log for domain 1 is 1-1-12 (at mysql-bin.000001:12345) but the standby is at 1-1-10: 1 transaction (seq 11) is missing"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			a := New(Config{DSN: "u:p@tcp(127.0.0.1:3307)/", Logger: slog.New(slog.NewTextHandler(io.Discard, nil))}, nil)
			s := &session{a: a, follow: newFollower(lastOf(t, tc.standby))}
			var err error
			for i, x := range tc.txns {
				err = s.followCheck(gtid(t, x.gtid), x.skip, at)
				if err != nil && i != len(tc.txns)-1 {
					t.Fatalf("refused %s: %v", x.gtid, err)
				}
			}
			if tc.wantErr == "" {
				if err != nil {
					t.Fatalf("refused: %v", err)
				}
				return
			}
			if !errors.Is(err, ErrRelayGap) || !strings.HasPrefix(err.Error(), tc.wantErr) {
				t.Fatalf("err = %v\nwant ErrRelayGap: %s...", err, tc.wantErr)
			}
		})
	}
}

func TestSkipRefusedOnStopError(t *testing.T) {
	a := New(Config{Logger: slog.New(slog.NewTextHandler(io.Discard, nil))}, nil)
	a.stopped(&StopError{Reason: ErrPreflight, Lines: []string{"standby x: log_bin=OFF: ..."}})
	for _, g := range []string{"", "0-1-5"} {
		if err := a.Skip(g); !errors.Is(err, ErrNotFailing) {
			t.Fatalf("Skip(%q) = %v, want ErrNotFailing", g, err)
		}
	}
	a.stopped(&StopError{Reason: ErrPreflight, Lines: []string{"standby x: log_bin=OFF: ..."}})
	if st := a.Status(); st.State != StateError || st.Errors != 1 || st.LastError != "standby x: log_bin=OFF: ..." {
		t.Fatalf("status after the same stop twice: %+v (want one error counted)", st)
	}
}
