package relay

import (
	"bytes"
	"encoding/binary"
	"errors"
	"io"
	"os"
	"path/filepath"
	"testing"

	"github.com/hotstandby/hotstandby/binlog"
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
	rot := m.event(binlog.RotateEvent, binlog.RotateBody(4, "mysql-bin.000002"))
	noCRC := binlog.NewEvent(binlog.QueryEvent, 1, 500, 0, binlog.QueryBody("", "BEGIN"), false)
	for _, crc := range []bool{true, false} {
		f.Add([]byte{}, crc)
		f.Add(txn, crc)
		f.Add(txn[:len(txn)-3], crc)
		f.Add(append(append([]byte(nil), txn...), ddl...), crc)
		f.Add(append(append(append([]byte(nil), txn...), stmt...), rot...), crc)
		f.Add(append(append([]byte(nil), ddl...), make([]byte, 64)...), crc)
		f.Add(append(append([]byte(nil), stmt[:40]...), 0xff, 0xff), crc)
		f.Add(noCRC, crc)
		f.Add(binlog.NewEvent(binlog.MariaGTIDEvent, 1, 100, 0, []byte{1, 2, 3}, crc), crc)
		f.Add(binlog.NewEvent(binlog.RotateEvent, 1, 100, 0, []byte{1}, crc), crc)
		f.Add(binlog.NewEvent(binlog.FormatDescriptionEvent, 1, 100, 0, nil, crc), crc)
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
		fde := binlog.NewEvent(binlog.FormatDescriptionEvent, testServerID, 256, 0, binlog.FDEBody(alg), true)
		path := filepath.Join(dir, segmentName(1, "mysql-bin.000001"))
		content := append(append(append([]byte(nil), binlog.Magic...), fde...), data...)
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
			if int64(len(ev)) < binlog.HeaderLen || s.Offset() != off+int64(len(ev)) {
				t.Fatalf("event of %d bytes at %d, next offset %d", len(ev), off, s.Offset())
			}
		}
		s.Close()

		cfg := testRelayConfig(dir)
		r, end, err := Open(cfg, Frontier{})
		if err != nil {
			if !errors.Is(err, ErrCorrupt) {
				t.Fatalf("Open: %v, want success or ErrCorrupt", err)
			}
			after, _ := os.ReadFile(path)
			if !bytes.Equal(after, content) {
				t.Fatal("Open failed but changed the segment")
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

		r, again, err := Open(cfg, end)
		if err != nil {
			t.Fatalf("second Open: %v", err)
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
	for off := 0; off+binlog.HeaderLen <= len(data); {
		size := int(binary.LittleEndian.Uint32(data[off+9:]))
		if size > 1<<20 {
			return true
		}
		if size < binlog.HeaderLen {
			return false
		}
		off += size
	}
	return false
}
