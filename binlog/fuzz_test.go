package binlog

import (
	"testing"
)

// FuzzParseFilePos checks that parsing never panics and that a parsed
// position prints to a string that parses back to it.
func FuzzParseFilePos(f *testing.F) {
	for _, s := range []string{
		"mysql-bin.000042:1234", "mysql-bin.000001:4", ":4", "mysql-bin:4", "a:b.1:2",
		"mysql-bin.000001:", "mysql-bin.000001:-1", ".1:1", "x.18446744073709551616:1", "",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		p, err := ParseFilePos(s)
		if err != nil {
			return
		}
		if p.IsZero() {
			t.Fatalf("ParseFilePos(%q) gave the zero position", s)
		}
		back, err := ParseFilePos(p.String())
		if err != nil || back != p {
			t.Fatalf("ParseFilePos(%q) = %+v; reparsing %q gave %+v, %v", s, p, p.String(), back, err)
		}
		if c, err := p.Compare(p); err != nil || c != 0 {
			t.Fatalf("%+v.Compare(itself) = %d, %v", p, c, err)
		}
	})
}

// FuzzDecodePosition checks that decoding never panics and that a decoded
// position encodes to a string that decodes back to it.
func FuzzDecodePosition(f *testing.F) {
	for _, s := range []string{
		"file:mysql-bin.000042:1234|gtid:mariadb:0-1-42,1-2-7",
		"file:|gtid::",
		"file:mysql-bin.000001:4|gtid:mariadb:",
		"file:binlog.000010:4|gtid:mysql:3e11fa47-71ca-11e1-9e33-c80aa9429562:1-5",
		"file:binlog.000010:4|gtid:mysql:3e11fa47-71ca-11e1-9e33-c80aa9429562:1-5:7-9,8a94f357-aab4-11df-86ab-c80aa9429562:3",
		"file:mysql-bin.000001:4|gtid:mariadb",
		"file:a|gtid:b.1:2|gtid:mariadb:0-1-1",
		"file:mysql-bin:4|gtid:oracle:1",
		"",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		p, err := DecodePosition(s)
		if err != nil {
			return
		}
		enc := p.Encode()
		back, err := DecodePosition(enc)
		if err != nil {
			t.Fatalf("DecodePosition(%q) = %v; decoding its encoding %q: %v", s, p, enc, err)
		}
		if back.FilePos != p.FilePos || !back.GTID.Equal(p.GTID) || back.GTID.Flavor() != p.GTID.Flavor() {
			t.Fatalf("round trip of %q: %v (%s) became %v (%s)", s, p, p.GTID.Flavor(), back, back.GTID.Flavor())
		}
		if back.Encode() != enc {
			t.Fatalf("encoding is not stable: %q then %q", enc, back.Encode())
		}
	})
}

// FuzzParseGTIDSet checks that a parsed set prints to a string that parses
// back to an equal set that contains the original and is contained in it.
func FuzzParseGTIDSet(f *testing.F) {
	for _, s := range []string{"0-1-42", "0-1-42,1-2-7", "", "0-1-1,0-1-2", "3e11fa47-71ca-11e1-9e33-c80aa9429562:1-5", "a-b-c"} {
		f.Add(s, true)
		f.Add(s, false)
	}
	f.Fuzz(func(t *testing.T, s string, maria bool) {
		flavor := MySQL
		if maria {
			flavor = MariaDB
		}
		set, err := ParseGTIDSet(flavor, s)
		if err != nil {
			return
		}
		back, err := ParseGTIDSet(flavor, set.String())
		if err != nil || !back.Equal(set) {
			t.Fatalf("ParseGTIDSet(%q) = %q; reparsed %q, %v", s, set, back, err)
		}
		for _, pair := range [][2]GTIDSet{{set, back}, {back, set}} {
			if ok, err := pair[0].Contains(pair[1]); err != nil || !ok {
				t.Fatalf("%q.Contains(%q) = %v, %v", pair[0], pair[1], ok, err)
			}
		}
	})
}
