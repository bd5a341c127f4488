package binlog

import (
	"bytes"
	"encoding/binary"
	"errors"
	"io"
	"os"
	"path/filepath"
	"testing"
)

// FuzzSegmentReader puts arbitrary bytes after a valid magic and format
// description and checks that neither the reader nor recovery panics, that
// recovery either refuses the segment as corrupt or leaves it readable to
// its end, and that recovery is idempotent.
func FuzzSegmentReader(f *testing.F) {
	m := newMaster()
	m.fileHeader()
	txn := bytes.Join(m.txn(0, 1), nil)
	ddl := bytes.Join(m.ddl(0, 2, "CREATE TABLE t (id int)"), nil)
	stmt := bytes.Join(m.stmt(1, 3), nil)
	rot := m.event(RotateEvent, rotateBody(4, "mysql-bin.000002"))
	noCRC := mkEvent(QueryEvent, 1, 500, 0, queryBody("", "BEGIN"), false)
	for _, crc := range []bool{true, false} {
		f.Add([]byte{}, crc)
		f.Add(txn, crc)
		f.Add(txn[:len(txn)-3], crc)
		f.Add(append(append([]byte(nil), txn...), ddl...), crc)
		f.Add(append(append(append([]byte(nil), txn...), stmt...), rot...), crc)
		f.Add(append(append([]byte(nil), ddl...), make([]byte, 64)...), crc)
		f.Add(append(append([]byte(nil), stmt[:40]...), 0xff, 0xff), crc)
		f.Add(noCRC, crc)
		f.Add(mkEvent(MariaGTIDEvent, 1, 100, 0, []byte{1, 2, 3}, crc), crc)
		f.Add(mkEvent(RotateEvent, 1, 100, 0, []byte{1}, crc), crc)
		f.Add(mkEvent(FormatDescriptionEvent, 1, 100, 0, nil, crc), crc)
	}
	f.Fuzz(func(t *testing.T, data []byte, crc bool) {
		if claimsHugeEvent(data) {
			// Such a header makes the reader allocate its claimed size
			// (TestSegmentReaderHugeTornSize), which only slows fuzzing down.
			t.Skip()
		}
		dir := t.TempDir()
		alg := byte(0)
		if crc {
			alg = 1
		}
		fde := mkEvent(FormatDescriptionEvent, testServerID, 256, 0, fdeBody(alg), true)
		path := filepath.Join(dir, segmentName(1, "mysql-bin.000001"))
		content := append(append(append([]byte(nil), Magic...), fde...), data...)
		if err := os.WriteFile(path, content, 0o600); err != nil {
			t.Fatal(err)
		}

		// The reader ends with io.EOF or a torn event, never a panic.
		s, err := OpenSegment(path)
		if err != nil {
			t.Fatalf("OpenSegment of a valid header: %v", err)
		}
		for {
			off := s.Offset()
			ev, err := s.Next()
			if err == io.EOF {
				break
			}
			if err != nil {
				if !errors.Is(err, errTorn) {
					t.Fatalf("Next: %v, want io.EOF or a torn event", err)
				}
				break
			}
			if int64(len(ev)) < HeaderLen || s.Offset() != off+int64(len(ev)) {
				t.Fatalf("event of %d bytes at %d, next offset %d", len(ev), off, s.Offset())
			}
		}
		s.Close()

		cfg := testRelayConfig(dir)
		r, end, err := OpenRelay(cfg, Frontier{})
		if err != nil {
			if !errors.Is(err, ErrCorruptRelay) {
				t.Fatalf("OpenRelay: %v, want success or ErrCorruptRelay", err)
			}
			after, _ := os.ReadFile(path)
			if !bytes.Equal(after, content) {
				t.Fatal("OpenRelay failed but changed the segment")
			}
			return
		}
		if err := r.Close(); err != nil {
			t.Fatal(err)
		}
		segs, err := ListSegments(dir)
		if err != nil {
			t.Fatal(err)
		}
		if len(segs) != 1 || end.Segment != 1 || segs[0].Size != end.Offset {
			t.Fatalf("after recovery: segments %+v, frontier seg %d offset %d", segs, end.Segment, end.Offset)
		}
		after, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.HasPrefix(content, after) {
			t.Fatal("recovery did not only cut the tail")
		}
		s, err = OpenSegment(path)
		if err != nil {
			t.Fatalf("OpenSegment after recovery: %v", err)
		}
		for {
			_, err := s.Next()
			if err == io.EOF {
				break
			}
			if err != nil {
				t.Fatalf("reading the recovered segment at offset %d: %v", s.Offset(), err)
			}
		}
		s.Close()

		r, again, err := OpenRelay(cfg, end)
		if err != nil {
			t.Fatalf("second OpenRelay: %v", err)
		}
		r.Close()
		if again.Segment != end.Segment || again.Offset != end.Offset || again.Pos.FilePos != end.Pos.FilePos ||
			again.Pos.GTID.String() != end.Pos.GTID.String() {
			t.Fatalf("second recovery gave %+v, first %+v", again, end)
		}
	})
}

// claimsHugeEvent reports whether data, read as a chain of events, has a
// header claiming more than 1 MiB.
func claimsHugeEvent(data []byte) bool {
	for off := 0; off+HeaderLen <= len(data); {
		size := int(binary.LittleEndian.Uint32(data[off+9:]))
		if size > 1<<20 {
			return true
		}
		if size < HeaderLen {
			return false
		}
		off += size
	}
	return false
}

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
