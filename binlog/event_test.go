package binlog

import (
	"encoding/binary"
	"errors"
	"testing"
)

// Event types the tests use that the package does not name.
const (
	tableMapEvent  EventType = 19
	writeRowsEvent EventType = 23 // WRITE_ROWS_EVENT_V1, what MariaDB writes
)

// testServerID is the master's server_id in the synthetic streams.
const testServerID = 1

func TestParseHeader(t *testing.T) {
	ev := NewEvent(XIDEvent, 7, 1234, 0x0041, XIDBody(9), true)
	tests := []struct {
		name    string
		ev      []byte
		want    Header
		wantErr error
	}{
		{name: "xid", ev: ev, want: Header{Timestamp: 1700000000, Type: XIDEvent, ServerID: 7, Size: uint32(len(ev)), LogPos: 1234, Flags: 0x0041}},
		{name: "header only", ev: ev[:HeaderLen], want: Header{Timestamp: 1700000000, Type: XIDEvent, ServerID: 7, Size: uint32(len(ev)), LogPos: 1234, Flags: 0x0041}},
		{name: "short", ev: ev[:HeaderLen-1], wantErr: ErrShortEvent},
		{name: "empty", ev: nil, wantErr: ErrShortEvent},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParseHeader(tt.ev)
			if !errors.Is(err, tt.wantErr) {
				t.Fatalf("ParseHeader: err %v, want %v", err, tt.wantErr)
			}
			if got != tt.want {
				t.Errorf("ParseHeader = %+v, want %+v", got, tt.want)
			}
		})
	}
}

func TestHeaderStart(t *testing.T) {
	ev := NewEvent(XIDEvent, 1, 1000, 0, XIDBody(1), true)
	h, err := ParseHeader(ev)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := h.Start(), uint64(1000-len(ev)); got != want {
		t.Errorf("Start = %d, want %d", got, want)
	}
}

func TestVerifyChecksum(t *testing.T) {
	good := NewEvent(MariaGTIDEvent, 1, 500, 0, MariaGTIDBody(0, 42, 0), true)
	tests := []struct {
		name    string
		ev      []byte
		wantErr error
	}{
		{name: "valid", ev: good},
		{name: "valid fde", ev: NewEvent(FormatDescriptionEvent, 1, 256, 0, FDEBody(1), true)},
		{name: "header plus crc only", ev: NewEvent(StopEvent, 1, 100, 0, nil, true)},
		{name: "no checksum", ev: NewEvent(MariaGTIDEvent, 1, 500, 0, MariaGTIDBody(0, 42, 0), false), wantErr: ErrChecksum},
		{name: "too short", ev: good[:HeaderLen+3], wantErr: ErrShortEvent},
		{name: "empty", ev: nil, wantErr: ErrShortEvent},
		{name: "truncated", ev: good[:len(good)-1], wantErr: ErrChecksum},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if err := VerifyChecksum(tt.ev); !errors.Is(err, tt.wantErr) {
				t.Errorf("VerifyChecksum: err %v, want %v", err, tt.wantErr)
			}
		})
	}
}

func TestVerifyChecksumDetectsEveryBitFlip(t *testing.T) {
	events := map[string][]byte{
		"gtid":  NewEvent(MariaGTIDEvent, 1, 500, 0, MariaGTIDBody(0, 42, 0), true),
		"query": NewEvent(QueryEvent, 1, 700, 0, QueryBody("shop", "INSERT INTO t VALUES (1)"), true),
		"fde":   NewEvent(FormatDescriptionEvent, 1, 256, 0, FDEBody(1), true),
	}
	for name, ev := range events {
		t.Run(name, func(t *testing.T) {
			for bit := 0; bit < len(ev)*8; bit++ {
				bad := append([]byte(nil), ev...)
				bad[bit/8] ^= 1 << (bit % 8)
				if err := VerifyChecksum(bad); !errors.Is(err, ErrChecksum) {
					t.Fatalf("bit %d flipped: err %v, want ErrChecksum", bit, err)
				}
			}
		})
	}
}

func TestFDEChecksumAlg(t *testing.T) {
	tests := []struct {
		name string
		ev   []byte
		want byte
	}{
		{name: "crc32", ev: NewEvent(FormatDescriptionEvent, 1, 256, 0, FDEBody(1), true), want: 1},
		{name: "none", ev: NewEvent(FormatDescriptionEvent, 1, 256, 0, FDEBody(0), true), want: 0},
		{name: "too short for the field", ev: NewEvent(FormatDescriptionEvent, 1, 80, 0, make([]byte, 57), false), want: 0},
		{name: "empty", ev: nil, want: 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := FDEChecksumAlg(tt.ev); got != tt.want {
				t.Errorf("FDEChecksumAlg = %d, want %d", got, tt.want)
			}
		})
	}
}

func TestRotateTarget(t *testing.T) {
	tests := []struct {
		name        string
		ev          []byte
		checksummed bool
		want        FilePos
		wantErr     error
	}{
		{name: "with checksum", ev: NewEvent(RotateEvent, 1, 0, FlagArtificial, RotateBody(4, "mysql-bin.000001"), true), checksummed: true, want: FilePos{File: "mysql-bin.000001", Pos: 4}},
		{name: "without checksum", ev: NewEvent(RotateEvent, 1, 0, FlagArtificial, RotateBody(1234, "mysql-bin.000010"), false), want: FilePos{File: "mysql-bin.000010", Pos: 1234}},
		{name: "empty name", ev: NewEvent(RotateEvent, 1, 0, 0, RotateBody(4, ""), true), checksummed: true, want: FilePos{Pos: 4}},
		{name: "short", ev: NewEvent(RotateEvent, 1, 0, 0, []byte{4, 0, 0, 0}, true), checksummed: true, wantErr: ErrShortEvent},
		{name: "header only", ev: NewEvent(RotateEvent, 1, 0, 0, nil, false), wantErr: ErrShortEvent},
		{name: "short with checksum flag", ev: NewEvent(RotateEvent, 1, 0, 0, nil, false)[:HeaderLen-2], checksummed: true, wantErr: ErrShortEvent},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := RotateTarget(tt.ev, tt.checksummed)
			if !errors.Is(err, tt.wantErr) {
				t.Fatalf("RotateTarget: err %v, want %v", err, tt.wantErr)
			}
			if got != tt.want {
				t.Errorf("RotateTarget = %+v, want %+v", got, tt.want)
			}
		})
	}
}

func TestMariaGTID(t *testing.T) {
	// With FL_GROUP_COMMIT_ID the padding is replaced by an 8-byte commit_id.
	groupBody := append(MariaGTIDBody(3, 99, MariaFlagGroupID)[:13], binary.LittleEndian.AppendUint64(nil, 77)...)
	tests := []struct {
		name           string
		ev             []byte
		want           GTID
		wantStandalone bool
		wantCommitID   uint64
		wantErr        error
	}{
		{name: "transactional", ev: NewEvent(MariaGTIDEvent, 5, 500, 0, MariaGTIDBody(0, 42, 0), true), want: GTID{Domain: 0, Server: 5, Seq: 42}},
		{name: "standalone ddl", ev: NewEvent(MariaGTIDEvent, 5, 500, 0, MariaGTIDBody(2, 7, MariaFlagStandalone), true), want: GTID{Domain: 2, Server: 5, Seq: 7}, wantStandalone: true},
		{name: "group commit id", ev: NewEvent(MariaGTIDEvent, 5, 500, 0, groupBody, true), want: GTID{Domain: 3, Server: 5, Seq: 99}, wantCommitID: 77},
		{name: "short", ev: NewEvent(MariaGTIDEvent, 5, 500, 0, make([]byte, 12), false), wantErr: ErrShortEvent},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h, err := ParseHeader(tt.ev)
			if err != nil {
				t.Fatal(err)
			}
			g, standalone, commitID, err := MariaGTID(tt.ev, h)
			if !errors.Is(err, tt.wantErr) {
				t.Fatalf("MariaGTID: err %v, want %v", err, tt.wantErr)
			}
			if g != tt.want || standalone != tt.wantStandalone || commitID != tt.wantCommitID {
				t.Errorf("MariaGTID = %v standalone=%v commit_id=%d, want %v %v %d", g, standalone, commitID, tt.want, tt.wantStandalone, tt.wantCommitID)
			}
		})
	}
}

func TestMySQLGTID(t *testing.T) {
	sid := [16]byte{0x3e, 0x11, 0xfa, 0x47, 0x71, 0xca, 0x11, 0xe1, 0x9e, 0x33, 0xc8, 0x0a, 0xa9, 0x42, 0x95, 0x62}
	tests := []struct {
		name    string
		ev      []byte
		wantGno int64
		wantErr error
	}{
		{name: "gtid", ev: NewEvent(MySQLGTIDEvent, 1, 500, 0, MySQLGTIDBody(sid, 23), true), wantGno: 23},
		{name: "short", ev: NewEvent(MySQLGTIDEvent, 1, 500, 0, make([]byte, 24), false), wantErr: ErrShortEvent},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			gotSid, gno, err := MySQLGTID(tt.ev)
			if !errors.Is(err, tt.wantErr) {
				t.Fatalf("MySQLGTID: err %v, want %v", err, tt.wantErr)
			}
			if tt.wantErr != nil {
				return
			}
			if gotSid != sid || gno != tt.wantGno {
				t.Errorf("MySQLGTID = %x:%d, want %x:%d", gotSid, gno, sid, tt.wantGno)
			}
		})
	}
}

func TestQueryText(t *testing.T) {
	tests := []struct {
		name        string
		ev          []byte
		checksummed bool
		want        string
	}{
		{name: "with checksum", ev: NewEvent(QueryEvent, 1, 900, 0, QueryBody("shop", "CREATE TABLE t (id int)"), true), checksummed: true, want: "CREATE TABLE t (id int)"},
		{name: "without checksum", ev: NewEvent(QueryEvent, 1, 900, 0, QueryBody("", "BEGIN"), false), want: "BEGIN"},
		{name: "empty statement", ev: NewEvent(QueryEvent, 1, 900, 0, QueryBody("db", ""), true), checksummed: true, want: ""},
		{name: "post-header cut", ev: NewEvent(QueryEvent, 1, 900, 0, make([]byte, 12), true), checksummed: true, want: ""},
		{name: "status vars past the end", ev: NewEvent(QueryEvent, 1, 900, 0, []byte{0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff}, true), checksummed: true, want: ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := string(QueryText(tt.ev, tt.checksummed)); got != tt.want {
				t.Errorf("QueryText = %q, want %q", got, tt.want)
			}
		})
	}
}

func TestIsCommitQuery(t *testing.T) {
	tests := []struct {
		q    string
		want bool
	}{
		{"COMMIT", true},
		{"commit", true},
		{"  COMMIT\n", true},
		{"ROLLBACK", true},
		{"XA COMMIT 'x'", true},
		{"xa rollback 'x'", true},
		{"BEGIN", false},
		{"INSERT INTO commit_log VALUES (1)", false},
		{"COMMITTED", false},
		{"", false},
	}
	for _, tt := range tests {
		t.Run(tt.q, func(t *testing.T) {
			if got := isCommitQuery([]byte(tt.q)); got != tt.want {
				t.Errorf("isCommitQuery(%q) = %v, want %v", tt.q, got, tt.want)
			}
		})
	}
}

func TestTrackerBoundaries(t *testing.T) {
	sid := [16]byte{0x3e, 0x11, 0xfa, 0x47, 0x71, 0xca, 0x11, 0xe1, 0x9e, 0x33, 0xc8, 0x0a, 0xa9, 0x42, 0x95, 0x62}
	ev := func(typ EventType, body []byte) []byte { return NewEvent(typ, testServerID, 1000, 0, body, true) }
	rows := func() []byte { return ev(writeRowsEvent, []byte("row image")) }
	tmap := func() []byte { return ev(tableMapEvent, []byte("table map")) }
	tests := []struct {
		name     string
		start    GTIDSet
		events   [][]byte
		want     []bool // boundary after each event
		wantSet  string
		wantFlav Flavor
	}{
		{
			name:   "between transactions",
			events: [][]byte{ev(MariaGTIDList, make([]byte, 4)), ev(MariaBinlogCheckpoint, []byte{0, 0, 0, 0})},
			want:   []bool{true, true},
		},
		{
			name:    "gtid rows xid",
			events:  [][]byte{ev(MariaGTIDEvent, MariaGTIDBody(0, 42, 0)), tmap(), rows(), ev(XIDEvent, XIDBody(1))},
			want:    []bool{false, false, false, true},
			wantSet: "0-1-42", wantFlav: MariaDB,
		},
		{
			name:    "standalone ddl",
			events:  [][]byte{ev(MariaGTIDEvent, MariaGTIDBody(0, 43, MariaFlagStandalone)), ev(QueryEvent, QueryBody("shop", "CREATE TABLE t (id int)"))},
			want:    []bool{false, true},
			wantSet: "0-1-43", wantFlav: MariaDB,
		},
		{
			name: "begin statements commit",
			events: [][]byte{
				ev(MariaGTIDEvent, MariaGTIDBody(1, 5, 0)),
				ev(QueryEvent, QueryBody("shop", "BEGIN")),
				ev(QueryEvent, QueryBody("shop", "INSERT INTO m VALUES (1)")),
				ev(QueryEvent, QueryBody("shop", "INSERT INTO m VALUES (2)")),
				ev(QueryEvent, QueryBody("shop", "COMMIT")),
			},
			want:    []bool{false, false, false, false, true},
			wantSet: "1-1-5", wantFlav: MariaDB,
		},
		{
			name:    "rollback ends a transaction",
			events:  [][]byte{ev(MariaGTIDEvent, MariaGTIDBody(0, 9, 0)), ev(QueryEvent, QueryBody("", "BEGIN")), ev(QueryEvent, QueryBody("", "ROLLBACK"))},
			want:    []bool{false, false, true},
			wantSet: "0-1-9", wantFlav: MariaDB,
		},
		{
			name:  "unfinished transaction is not in the set",
			start: mustGTIDSet(t, MariaDB, "0-1-41"),
			events: [][]byte{
				ev(MariaGTIDEvent, MariaGTIDBody(0, 42, 0)), tmap(), rows(), ev(XIDEvent, XIDBody(1)),
				ev(MariaGTIDEvent, MariaGTIDBody(0, 43, 0)), tmap(), rows(),
			},
			want:    []bool{false, false, false, true, false, false, false},
			wantSet: "0-1-42", wantFlav: MariaDB,
		},
		{
			name:    "domains kept apart",
			start:   mustGTIDSet(t, MariaDB, "0-1-10,2-1-3"),
			events:  [][]byte{ev(MariaGTIDEvent, MariaGTIDBody(1, 7, 0)), rows(), ev(XIDEvent, XIDBody(1)), ev(MariaGTIDEvent, MariaGTIDBody(0, 11, MariaFlagStandalone)), ev(QueryEvent, QueryBody("", "DROP TABLE x"))},
			want:    []bool{false, false, true, false, true},
			wantSet: "0-1-11,1-1-7,2-1-3", wantFlav: MariaDB,
		},
		{
			name:    "mysql begin rows xid",
			start:   NewGTIDSet(MySQL),
			events:  [][]byte{ev(MySQLGTIDEvent, MySQLGTIDBody(sid, 5)), ev(QueryEvent, QueryBody("", "BEGIN")), rows(), ev(XIDEvent, XIDBody(1))},
			want:    []bool{false, false, false, true},
			wantSet: "3e11fa47-71ca-11e1-9e33-c80aa9429562:5", wantFlav: MySQL,
		},
		{
			name:    "mysql ddl",
			start:   NewGTIDSet(MySQL),
			events:  [][]byte{ev(MySQLGTIDEvent, MySQLGTIDBody(sid, 6)), ev(QueryEvent, QueryBody("", "CREATE TABLE t (id int)"))},
			want:    []bool{false, true},
			wantSet: "3e11fa47-71ca-11e1-9e33-c80aa9429562:6", wantFlav: MySQL,
		},
		{
			name:     "mysql anonymous",
			start:    NewGTIDSet(MySQL),
			events:   [][]byte{ev(MySQLAnonymousGTID, make([]byte, 42)), ev(QueryEvent, QueryBody("", "BEGIN")), rows(), ev(XIDEvent, XIDBody(1))},
			want:     []bool{false, false, false, true},
			wantFlav: MySQL,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tr := newTracker(tt.start)
			for i, e := range tt.events {
				h, err := ParseHeader(e)
				if err != nil {
					t.Fatal(err)
				}
				got, err := tr.feed(e, h, true)
				if err != nil {
					t.Fatalf("event %d (type %d): %v", i, h.Type, err)
				}
				if got != tt.want[i] {
					t.Errorf("event %d (type %d): boundary %v, want %v", i, h.Type, got, tt.want[i])
				}
			}
			set := tr.gtids()
			if set.String() != tt.wantSet {
				t.Errorf("GTID set %q, want %q", set, tt.wantSet)
			}
			if tt.wantFlav != "" && set.Flavor() != tt.wantFlav {
				t.Errorf("flavor %q, want %q", set.Flavor(), tt.wantFlav)
			}
		})
	}
}

func TestTrackerShortGTIDEvent(t *testing.T) {
	tr := newTracker(NewGTIDSet(MariaDB))
	ev := NewEvent(MariaGTIDEvent, 1, 100, 0, make([]byte, 8), false)
	h, _ := ParseHeader(ev)
	if _, err := tr.feed(ev, h, false); !errors.Is(err, ErrShortEvent) {
		t.Errorf("feed short GTID event: err %v, want ErrShortEvent", err)
	}
}

func TestTrackerSnapshotIsACopy(t *testing.T) {
	tr := newTracker(NewGTIDSet(MariaDB))
	feedAll := func(evs ...[]byte) {
		t.Helper()
		for _, e := range evs {
			h, _ := ParseHeader(e)
			if _, err := tr.feed(e, h, true); err != nil {
				t.Fatal(err)
			}
		}
	}
	feedAll(NewEvent(MariaGTIDEvent, 1, 100, 0, MariaGTIDBody(0, 1, MariaFlagStandalone), true), NewEvent(QueryEvent, 1, 200, 0, QueryBody("", "CREATE TABLE a (i int)"), true))
	snap := tr.gtids()
	feedAll(NewEvent(MariaGTIDEvent, 1, 300, 0, MariaGTIDBody(0, 2, MariaFlagStandalone), true), NewEvent(QueryEvent, 1, 400, 0, QueryBody("", "CREATE TABLE b (i int)"), true))
	if snap.String() != "0-1-1" {
		t.Errorf("snapshot changed to %q after more transactions", snap)
	}
	if got := tr.gtids().String(); got != "0-1-2" {
		t.Errorf("tracker set %q, want 0-1-2", got)
	}
}
