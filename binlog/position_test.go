package binlog

import (
	"testing"
)

// mustGTIDSet parses a set or fails the test.
func mustGTIDSet(t testing.TB, f Flavor, s string) GTIDSet {
	t.Helper()
	set, err := ParseGTIDSet(f, s)
	if err != nil {
		t.Fatalf("ParseGTIDSet(%s, %q): %v", f, s, err)
	}
	return set
}

func TestParseFlavor(t *testing.T) {
	tests := []struct {
		name    string
		in      string
		want    Flavor
		wantErr bool
	}{
		{name: "mariadb", in: "mariadb", want: MariaDB},
		{name: "mysql", in: "mysql", want: MySQL},
		{name: "empty", in: "", wantErr: true},
		{name: "case matters", in: "MariaDB", wantErr: true},
		{name: "other", in: "postgres", wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParseFlavor(tt.in)
			if (err != nil) != tt.wantErr {
				t.Fatalf("ParseFlavor(%q): err %v, wantErr %v", tt.in, err, tt.wantErr)
			}
			if got != tt.want {
				t.Errorf("ParseFlavor(%q) = %q, want %q", tt.in, got, tt.want)
			}
		})
	}
}

func TestFilePosCompare(t *testing.T) {
	fp := func(f string, p uint64) FilePos { return FilePos{File: f, Pos: p} }
	tests := []struct {
		name    string
		p, q    FilePos
		want    int
		wantErr bool
	}{
		{name: "same file lower offset", p: fp("mysql-bin.000001", 4), q: fp("mysql-bin.000001", 256), want: -1},
		{name: "same file higher offset", p: fp("mysql-bin.000001", 1000), q: fp("mysql-bin.000001", 256), want: 1},
		{name: "equal", p: fp("mysql-bin.000003", 77), q: fp("mysql-bin.000003", 77), want: 0},
		{name: "10 after 9 despite strings", p: fp("mysql-bin.000010", 4), q: fp("mysql-bin.000009", 99999), want: 1},
		{name: "9 before 10 despite strings", p: fp("mysql-bin.000009", 99999), q: fp("mysql-bin.000010", 4), want: -1},
		{name: "suffix width does not matter", p: fp("mysql-bin.10", 4), q: fp("mysql-bin.000010", 4), want: 0},
		{name: "999999 to 1000000", p: fp("mysql-bin.1000000", 4), q: fp("mysql-bin.999999", 4), want: 1},
		{name: "dotted base name", p: fp("host.example-bin.000002", 4), q: fp("host.example-bin.000001", 9), want: 1},
		{name: "different base names", p: fp("mysql-bin.000001", 4), q: fp("mariadb-bin.000001", 4), wantErr: true},
		{name: "no numeric suffix", p: fp("mysql-bin", 4), q: fp("mysql-bin.000001", 4), wantErr: true},
		{name: "other has no suffix", p: fp("mysql-bin.000001", 4), q: fp("mysql-bin.abc", 4), wantErr: true},
		{name: "unknown position", p: FilePos{}, q: fp("mysql-bin.000001", 4), wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := tt.p.Compare(tt.q)
			if (err != nil) != tt.wantErr {
				t.Fatalf("Compare: err %v, wantErr %v", err, tt.wantErr)
			}
			if err == nil && got != tt.want {
				t.Errorf("%v.Compare(%v) = %d, want %d", tt.p, tt.q, got, tt.want)
			}
			if err != nil {
				return
			}
			back, err := tt.q.Compare(tt.p)
			if err != nil || back != -tt.want {
				t.Errorf("reverse Compare = %d, %v, want %d", back, err, -tt.want)
			}
		})
	}
}

func TestFilePosAtLeast(t *testing.T) {
	fp := func(f string, p uint64) FilePos { return FilePos{File: f, Pos: p} }
	tests := []struct {
		name    string
		p, q    FilePos
		want    bool
		wantErr bool
	}{
		{name: "unknown q is always reached", p: FilePos{}, q: FilePos{}, want: true},
		{name: "known p reaches unknown q", p: fp("mysql-bin.000001", 4), q: FilePos{}, want: true},
		{name: "unknown p reaches nothing", p: FilePos{}, q: fp("mysql-bin.000001", 4), want: false},
		{name: "equal", p: fp("mysql-bin.000001", 4), q: fp("mysql-bin.000001", 4), want: true},
		{name: "later file", p: fp("mysql-bin.000010", 4), q: fp("mysql-bin.000009", 500), want: true},
		{name: "earlier file", p: fp("mysql-bin.000009", 500), q: fp("mysql-bin.000010", 4), want: false},
		{name: "different base names", p: fp("a.000001", 4), q: fp("b.000001", 4), wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := tt.p.AtLeast(tt.q)
			if (err != nil) != tt.wantErr {
				t.Fatalf("AtLeast: err %v, wantErr %v", err, tt.wantErr)
			}
			if err == nil && got != tt.want {
				t.Errorf("%v.AtLeast(%v) = %v, want %v", tt.p, tt.q, got, tt.want)
			}
		})
	}
}

func TestParseFilePos(t *testing.T) {
	tests := []struct {
		name    string
		in      string
		want    FilePos
		wantStr string
		wantErr bool
	}{
		{name: "plain", in: "mysql-bin.000042:1234", want: FilePos{File: "mysql-bin.000042", Pos: 1234}, wantStr: "mysql-bin.000042:1234"},
		{name: "start of file", in: "mysql-bin.000001:4", want: FilePos{File: "mysql-bin.000001", Pos: 4}, wantStr: "mysql-bin.000001:4"},
		{name: "zero offset", in: "mysql-bin.000001:0", want: FilePos{File: "mysql-bin.000001"}, wantStr: "mysql-bin.000001:0"},
		{name: "leading zeros in offset", in: "mysql-bin.000001:0004", want: FilePos{File: "mysql-bin.000001", Pos: 4}, wantStr: "mysql-bin.000001:4"},
		{name: "path with colon", in: "/var/lib/a:b/mysql-bin.000002:99", want: FilePos{File: "/var/lib/a:b/mysql-bin.000002", Pos: 99}, wantStr: "/var/lib/a:b/mysql-bin.000002:99"},
		{name: "largest offset", in: "mysql-bin.000001:18446744073709551615", want: FilePos{File: "mysql-bin.000001", Pos: 1<<64 - 1}, wantStr: "mysql-bin.000001:18446744073709551615"},
		{name: "empty", in: "", wantErr: true},
		{name: "no colon", in: "mysql-bin.000001", wantErr: true},
		{name: "no file", in: ":4", wantErr: true},
		{name: "no offset", in: "mysql-bin.000001:", wantErr: true},
		{name: "negative offset", in: "mysql-bin.000001:-4", wantErr: true},
		{name: "offset overflows", in: "mysql-bin.000001:18446744073709551616", wantErr: true},
		{name: "offset not a number", in: "mysql-bin.000001:abc", wantErr: true},
		{name: "file without suffix", in: "mysql-bin:4", wantErr: true},
		{name: "file with empty suffix", in: "mysql-bin.:4", wantErr: true},
		{name: "file is only a suffix", in: ".000001:4", wantErr: true},
		{name: "signed suffix", in: "mysql-bin.+1:4", wantErr: true},
		{name: "space in offset", in: "mysql-bin.000001: 4", wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParseFilePos(tt.in)
			if (err != nil) != tt.wantErr {
				t.Fatalf("ParseFilePos(%q): err %v, wantErr %v", tt.in, err, tt.wantErr)
			}
			if got != tt.want {
				t.Errorf("ParseFilePos(%q) = %+v, want %+v", tt.in, got, tt.want)
			}
			if got.String() != tt.wantStr {
				t.Errorf("String() = %q, want %q", got.String(), tt.wantStr)
			}
			if !tt.wantErr && got.IsZero() {
				t.Errorf("parsed position %+v is zero", got)
			}
		})
	}
}

func TestFilePosZero(t *testing.T) {
	var p FilePos
	if !p.IsZero() || p.String() != "" {
		t.Errorf("zero FilePos: IsZero %v String %q", p.IsZero(), p.String())
	}
}

func TestParseStart(t *testing.T) {
	tests := []struct {
		name    string
		in      string
		want    Start
		wantStr string
		wantErr bool
	}{
		{name: "empty is current", in: "", want: Start{Kind: StartCurrent}, wantStr: "current"},
		{name: "current", in: "current", want: Start{Kind: StartCurrent}, wantStr: "current"},
		{name: "gtid", in: "gtid:0-1-42", want: Start{Kind: StartGTID, GTID: "0-1-42"}, wantStr: "gtid:0-1-42"},
		{name: "gtid several domains", in: "gtid:0-1-42,1-2-7", want: Start{Kind: StartGTID, GTID: "0-1-42,1-2-7"}, wantStr: "gtid:0-1-42,1-2-7"},
		{name: "mysql gtid", in: "gtid:3e11fa47-71ca-11e1-9e33-c80aa9429562:1-5", want: Start{Kind: StartGTID, GTID: "3e11fa47-71ca-11e1-9e33-c80aa9429562:1-5"}, wantStr: "gtid:3e11fa47-71ca-11e1-9e33-c80aa9429562:1-5"},
		{name: "file", in: "file:mysql-bin.000004:189", want: Start{Kind: StartFile, File: FilePos{File: "mysql-bin.000004", Pos: 189}}, wantStr: "file:mysql-bin.000004:189"},
		{name: "file at 4", in: "file:mysql-bin.000004:4", want: Start{Kind: StartFile, File: FilePos{File: "mysql-bin.000004", Pos: 4}}, wantStr: "file:mysql-bin.000004:4"},
		{name: "file inside the magic", in: "file:mysql-bin.000004:3", wantErr: true},
		{name: "file at 0", in: "file:mysql-bin.000004:0", wantErr: true},
		{name: "file without offset", in: "file:mysql-bin.000004", wantErr: true},
		{name: "file without suffix", in: "file:mysql-bin:189", wantErr: true},
		{name: "file empty", in: "file:", wantErr: true},
		{name: "gtid empty", in: "gtid:", wantErr: true},
		{name: "unknown", in: "latest", wantErr: true},
		{name: "case matters", in: "CURRENT", wantErr: true},
		{name: "bare position", in: "mysql-bin.000004:189", wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParseStart(tt.in)
			if (err != nil) != tt.wantErr {
				t.Fatalf("ParseStart(%q): err %v, wantErr %v", tt.in, err, tt.wantErr)
			}
			if got != tt.want {
				t.Errorf("ParseStart(%q) = %+v, want %+v", tt.in, got, tt.want)
			}
			if tt.wantErr {
				return
			}
			if got.String() != tt.wantStr {
				t.Errorf("String() = %q, want %q", got.String(), tt.wantStr)
			}
			again, err := ParseStart(got.String())
			if err != nil || again != got {
				t.Errorf("ParseStart(String()) = %+v, %v, want %+v", again, err, got)
			}
		})
	}
}

func TestParseGTID(t *testing.T) {
	tests := []struct {
		name    string
		in      string
		want    GTID
		wantErr bool
	}{
		{name: "plain", in: "0-1-42", want: GTID{Domain: 0, Server: 1, Seq: 42}},
		{name: "spaces around", in: " 1-2-3 ", want: GTID{Domain: 1, Server: 2, Seq: 3}},
		{name: "largest", in: "4294967295-4294967295-18446744073709551615", want: GTID{Domain: 1<<32 - 1, Server: 1<<32 - 1, Seq: 1<<64 - 1}},
		{name: "domain overflows", in: "4294967296-1-1", wantErr: true},
		{name: "server overflows", in: "0-4294967296-1", wantErr: true},
		{name: "two parts", in: "0-1", wantErr: true},
		{name: "four parts", in: "0-1-2-3", wantErr: true},
		{name: "negative", in: "0--1-2", wantErr: true},
		{name: "letters", in: "a-b-c", wantErr: true},
		{name: "empty", in: "", wantErr: true},
		{name: "mysql form", in: "3e11fa47-71ca-11e1-9e33-c80aa9429562:5", wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParseGTID(tt.in)
			if (err != nil) != tt.wantErr {
				t.Fatalf("ParseGTID(%q): err %v, wantErr %v", tt.in, err, tt.wantErr)
			}
			if got != tt.want {
				t.Errorf("ParseGTID(%q) = %+v, want %+v", tt.in, got, tt.want)
			}
			if !tt.wantErr {
				if back, err := ParseGTID(got.String()); err != nil || back != got {
					t.Errorf("ParseGTID(String()) = %+v, %v", back, err)
				}
			}
		})
	}
}

func TestParseGTIDSetMariaDB(t *testing.T) {
	tests := []struct {
		name     string
		in       string
		wantStr  string
		wantZero bool
		wantErr  bool
	}{
		{name: "empty", in: "", wantStr: "", wantZero: true},
		{name: "blank", in: "  ", wantStr: "", wantZero: true},
		{name: "one domain", in: "0-1-42", wantStr: "0-1-42"},
		{name: "domains sorted", in: "10-2-7,0-1-42,2-1-1", wantStr: "0-1-42,2-1-1,10-2-7"},
		{name: "spaces", in: " 0-1-42 , 1-2-7 ", wantStr: "0-1-42,1-2-7"},
		{name: "domain twice", in: "0-1-42,0-2-43", wantErr: true},
		{name: "trailing comma", in: "0-1-42,", wantErr: true},
		{name: "bad gtid", in: "0-1", wantErr: true},
		{name: "mysql form", in: "3e11fa47-71ca-11e1-9e33-c80aa9429562:1-5", wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParseGTIDSet(MariaDB, tt.in)
			if (err != nil) != tt.wantErr {
				t.Fatalf("ParseGTIDSet(%q): err %v, wantErr %v", tt.in, err, tt.wantErr)
			}
			if tt.wantErr {
				return
			}
			if got.String() != tt.wantStr || got.IsZero() != tt.wantZero || got.Flavor() != MariaDB {
				t.Errorf("ParseGTIDSet(%q) = %q zero=%v flavor=%q, want %q zero=%v mariadb", tt.in, got, got.IsZero(), got.Flavor(), tt.wantStr, tt.wantZero)
			}
			back := mustGTIDSet(t, MariaDB, got.String())
			if !back.Equal(got) {
				t.Errorf("reparsed %q != %q", back, got)
			}
		})
	}
}

func TestParseGTIDSetMySQL(t *testing.T) {
	const u1 = "3e11fa47-71ca-11e1-9e33-c80aa9429562"
	const u2 = "8a94f357-aab4-11df-86ab-c80aa9429562"
	tests := []struct {
		name     string
		in       string
		wantStr  string
		wantZero bool
		wantErr  bool
	}{
		{name: "empty", in: "", wantStr: "", wantZero: true},
		{name: "one interval", in: u1 + ":1-5", wantStr: u1 + ":1-5"},
		{name: "upper case uuid", in: "3E11FA47-71CA-11E1-9E33-C80AA9429562:1-5", wantStr: u1 + ":1-5"},
		{name: "single transaction", in: u1 + ":7", wantStr: u1 + ":7"},
		{name: "intervals merged", in: u1 + ":1-3:4-5", wantStr: u1 + ":1-5"},
		{name: "two sources sorted", in: u2 + ":1-3," + u1 + ":1-5", wantStr: u1 + ":1-5," + u2 + ":1-3"},
		{name: "no interval", in: u1, wantErr: true},
		{name: "bad uuid", in: "not-a-uuid:1-5", wantErr: true},
		{name: "mariadb form", in: "0-1-42", wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParseGTIDSet(MySQL, tt.in)
			if (err != nil) != tt.wantErr {
				t.Fatalf("ParseGTIDSet(%q): err %v, wantErr %v", tt.in, err, tt.wantErr)
			}
			if tt.wantErr {
				return
			}
			if got.String() != tt.wantStr || got.IsZero() != tt.wantZero || got.Flavor() != MySQL {
				t.Errorf("ParseGTIDSet(%q) = %q zero=%v flavor=%q, want %q zero=%v mysql", tt.in, got, got.IsZero(), got.Flavor(), tt.wantStr, tt.wantZero)
			}
		})
	}
}

func TestParseGTIDSetUnknownFlavor(t *testing.T) {
	for _, in := range []string{"", "0-1-2"} {
		if _, err := ParseGTIDSet("oracle", in); err == nil {
			t.Errorf("ParseGTIDSet(oracle, %q): no error", in)
		}
	}
}

func TestGTIDSetContains(t *testing.T) {
	const u1 = "3e11fa47-71ca-11e1-9e33-c80aa9429562"
	maria := func(s string) GTIDSet { return mustGTIDSet(t, MariaDB, s) }
	my := func(s string) GTIDSet { return mustGTIDSet(t, MySQL, s) }
	tests := []struct {
		name    string
		s, o    GTIDSet
		want    bool
		wantErr bool
	}{
		{name: "empty contains empty", s: NewGTIDSet(MariaDB), o: NewGTIDSet(MariaDB), want: true},
		{name: "anything contains empty", s: maria("0-1-5"), o: GTIDSet{}, want: true},
		{name: "empty contains empty of other flavor", s: NewGTIDSet(MySQL), o: NewGTIDSet(MariaDB), want: true},
		{name: "same", s: maria("0-1-5"), o: maria("0-1-5"), want: true},
		{name: "later seq", s: maria("0-1-6"), o: maria("0-1-5"), want: true},
		{name: "earlier seq", s: maria("0-1-4"), o: maria("0-1-5"), want: false},
		{name: "missing domain", s: maria("0-1-9"), o: maria("0-1-5,1-1-1"), want: false},
		{name: "extra domain", s: maria("0-1-9,1-1-1"), o: maria("0-1-5"), want: true},
		{name: "empty does not contain", s: NewGTIDSet(MariaDB), o: maria("0-1-1"), want: false},
		{name: "mysql superset", s: my(u1 + ":1-10"), o: my(u1 + ":3-5"), want: true},
		{name: "mysql gap", s: my(u1 + ":1-3:5-10"), o: my(u1 + ":3-5"), want: false},
		{name: "mysql empty does not contain", s: NewGTIDSet(MySQL), o: my(u1 + ":1"), want: false},
		{name: "flavors differ", s: maria("0-1-5"), o: my(u1 + ":1"), wantErr: true},
		{name: "flavors differ other way", s: my(u1 + ":1"), o: maria("0-1-5"), wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := tt.s.Contains(tt.o)
			if (err != nil) != tt.wantErr {
				t.Fatalf("Contains: err %v, wantErr %v", err, tt.wantErr)
			}
			if got != tt.want {
				t.Errorf("%q.Contains(%q) = %v, want %v", tt.s, tt.o, got, tt.want)
			}
		})
	}
}

func TestAddMariaDBDoesNotMutate(t *testing.T) {
	orig := mustGTIDSet(t, MariaDB, "0-1-5,1-1-3")
	added := orig.AddMariaDB(GTID{Domain: 0, Server: 2, Seq: 6})
	added2 := added.AddMariaDB(GTID{Domain: 7, Server: 1, Seq: 1})
	if got := orig.String(); got != "0-1-5,1-1-3" {
		t.Errorf("receiver changed to %q", got)
	}
	if got := added.String(); got != "0-2-6,1-1-3" {
		t.Errorf("first Add = %q, want 0-2-6,1-1-3", got)
	}
	if got := added2.String(); got != "0-2-6,1-1-3,7-1-1" {
		t.Errorf("second Add = %q", got)
	}
	var zero GTIDSet
	one := zero.AddMariaDB(GTID{Domain: 0, Server: 1, Seq: 1})
	if !zero.IsZero() || one.String() != "0-1-1" || one.Flavor() != MariaDB {
		t.Errorf("Add on zero set: zero=%q one=%q flavor %q", zero, one, one.Flavor())
	}
}

func TestAddMySQLDoesNotMutate(t *testing.T) {
	const u1 = "3e11fa47-71ca-11e1-9e33-c80aa9429562"
	sid := [16]byte{0x3e, 0x11, 0xfa, 0x47, 0x71, 0xca, 0x11, 0xe1, 0x9e, 0x33, 0xc8, 0x0a, 0xa9, 0x42, 0x95, 0x62}
	orig := mustGTIDSet(t, MySQL, u1+":1-5")
	added := orig.AddMySQL(sid, 6)
	if got := orig.String(); got != u1+":1-5" {
		t.Errorf("receiver changed to %q", got)
	}
	if got := added.String(); got != u1+":1-6" {
		t.Errorf("Add = %q, want %s:1-6", got, u1)
	}
	empty := NewGTIDSet(MySQL)
	one := empty.AddMySQL(sid, 1)
	if !empty.IsZero() || one.String() != u1+":1" || one.Flavor() != MySQL {
		t.Errorf("Add on empty set: empty=%q one=%q", empty, one)
	}
}

func TestPositionEncodeDecode(t *testing.T) {
	const u1 = "3e11fa47-71ca-11e1-9e33-c80aa9429562"
	tests := []struct {
		name    string
		pos     Position
		wantEnc string
	}{
		{name: "zero", pos: Position{}, wantEnc: "file:|gtid::"},
		{name: "file only", pos: Position{FilePos: FilePos{File: "mysql-bin.000042", Pos: 1234}}, wantEnc: "file:mysql-bin.000042:1234|gtid::"},
		{name: "mariadb", pos: Position{FilePos: FilePos{File: "mysql-bin.000042", Pos: 1234}, GTID: mustGTIDSet(t, MariaDB, "0-1-42,1-2-7")}, wantEnc: "file:mysql-bin.000042:1234|gtid:mariadb:0-1-42,1-2-7"},
		{name: "mariadb empty set", pos: Position{FilePos: FilePos{File: "mysql-bin.000001", Pos: 4}, GTID: NewGTIDSet(MariaDB)}, wantEnc: "file:mysql-bin.000001:4|gtid:mariadb:"},
		{name: "gtid only", pos: Position{GTID: mustGTIDSet(t, MariaDB, "0-1-42")}, wantEnc: "file:|gtid:mariadb:0-1-42"},
		{name: "mysql", pos: Position{FilePos: FilePos{File: "binlog.000010", Pos: 4}, GTID: mustGTIDSet(t, MySQL, u1+":1-5")}, wantEnc: "file:binlog.000010:4|gtid:mysql:" + u1 + ":1-5"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			enc := tt.pos.Encode()
			if enc != tt.wantEnc {
				t.Errorf("Encode = %q, want %q", enc, tt.wantEnc)
			}
			got, err := DecodePosition(enc)
			if err != nil {
				t.Fatalf("DecodePosition(%q): %v", enc, err)
			}
			if got.FilePos != tt.pos.FilePos || !got.GTID.Equal(tt.pos.GTID) || got.GTID.Flavor() != tt.pos.GTID.Flavor() {
				t.Errorf("DecodePosition(%q) = %v (%q), want %v (%q)", enc, got, got.GTID.Flavor(), tt.pos, tt.pos.GTID.Flavor())
			}
			if got.Encode() != enc {
				t.Errorf("re-encoded %q, want %q", got.Encode(), enc)
			}
		})
	}
}

func TestDecodePositionErrors(t *testing.T) {
	tests := []struct {
		name    string
		in      string
		wantErr bool
	}{
		{name: "empty", in: "", wantErr: true},
		{name: "bare file position", in: "mysql-bin.000001:4", wantErr: true},
		{name: "no gtid part", in: "file:mysql-bin.000001:4", wantErr: true},
		{name: "no file prefix", in: "mysql-bin.000001:4|gtid:mariadb:0-1-1", wantErr: true},
		{name: "bad file position", in: "file:mysql-bin:4|gtid:mariadb:0-1-1", wantErr: true},
		{name: "unknown flavor", in: "file:mysql-bin.000001:4|gtid:oracle:1", wantErr: true},
		{name: "bad mariadb set", in: "file:mysql-bin.000001:4|gtid:mariadb:0-1", wantErr: true},
		{name: "bad mysql set", in: "file:mysql-bin.000001:4|gtid:mysql:xyz:1", wantErr: true},
		{name: "flavor without set", in: "file:mysql-bin.000001:4|gtid:mariadb", wantErr: false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := DecodePosition(tt.in)
			if (err != nil) != tt.wantErr {
				t.Errorf("DecodePosition(%q): err %v, wantErr %v", tt.in, err, tt.wantErr)
			}
		})
	}
}

func TestPositionString(t *testing.T) {
	tests := []struct {
		name string
		pos  Position
		want string
	}{
		{name: "none", pos: Position{}, want: "(none)"},
		{name: "empty set", pos: Position{GTID: NewGTIDSet(MariaDB)}, want: "(none)"},
		{name: "file", pos: Position{FilePos: FilePos{File: "mysql-bin.000004", Pos: 1234}}, want: "mysql-bin.000004:1234"},
		{name: "both", pos: Position{FilePos: FilePos{File: "mysql-bin.000004", Pos: 1234}, GTID: mustGTIDSet(t, MariaDB, "0-1-42")}, want: "mysql-bin.000004:1234 (gtid 0-1-42)"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := tt.pos.String(); got != tt.want {
				t.Errorf("String = %q, want %q", got, tt.want)
			}
		})
	}
}

func TestGTIDSetSeqBehind(t *testing.T) {
	tests := []struct {
		name, have, ahead string
		want              int64
	}{
		{"equal", "0-1-10", "0-1-10", 0},
		{"behind", "0-1-7", "0-1-10", 3},
		{"empty behind", "", "0-1-5", 5},
		{"two domains", "0-1-7,1-1-2", "0-1-10,1-1-4", 5},
		{"domain missing", "0-1-10", "0-1-10,2-1-3", 3},
		{"ahead of ahead", "0-1-12", "0-1-10", 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			have, _ := ParseGTIDSet(MariaDB, tt.have)
			ahead, _ := ParseGTIDSet(MariaDB, tt.ahead)
			got, ok := have.SeqBehind(ahead)
			if !ok || got != tt.want {
				t.Fatalf("SeqBehind = %d, %v; want %d", got, ok, tt.want)
			}
		})
	}
	my, _ := ParseGTIDSet(MySQL, "3e11fa47-71ca-11e1-9e33-c80aa9429562:1-5")
	if _, ok := NewGTIDSet(MySQL).SeqBehind(my); ok {
		t.Fatal("SeqBehind claims to count MySQL sets")
	}
}
