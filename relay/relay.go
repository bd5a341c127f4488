package relay

import (
	"github.com/hotstandby/hotstandby/binlog"

	"bufio"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"syscall"
)

// Config configures the relay log.
type Config struct {
	// Dir holds the segment files. It is created 0700.
	Dir string
	// SegmentSize is the size after which a segment is closed at the next
	// transaction boundary and a new one begins. A segment holds whole
	// transactions, so one may exceed it by the size of its last transaction.
	SegmentSize int64
	// Sync makes a segment's written bytes durable. Nil means fdatasync.
	// Tests inject delays and failures here.
	Sync func(*os.File) error
	// Acked is the last position acknowledged to the master (semi-sync),
	// as last checkpointed. Recovery never ends the relay log before it: a
	// torn or damaged tail at or before an acknowledged position is
	// ErrCorrupt (the master released those commits because the agent
	// said it had them), never cut. Zero: nothing acknowledged.
	Acked binlog.FilePos
	// Preallocate is how far ahead of the write position the active segment
	// is allocated (fallocate), so that the per-batch fdatasync need not
	// commit a size change to the journal. 0 means 64 MiB; negative turns
	// it off. The active segment's tail then reads as zeros; a segment is
	// cut to its exact size when it is closed, and recovery cuts the zeros
	// of a crashed one.
	Preallocate int64
}

// fdatasync is the default Sync: it flushes the data and what is needed to
// read it back (the size), not timestamps.
func fdatasync(f *os.File) error {
	for {
		err := syscall.Fdatasync(int(f.Fd()))
		if err != syscall.EINTR {
			if err != nil {
				return &os.PathError{Op: "fdatasync", Path: f.Name(), Err: err}
			}
			return nil
		}
	}
}

// DefaultConfig returns the defaults: 256 MiB segments.
func DefaultConfig(dir string) Config {
	return Config{Dir: dir, SegmentSize: 256 << 20}
}

// Frontier is a point in the relay log together with the master position it
// corresponds to: the end of the event at Offset in segment Segment is
// Pos.FilePos in the master's binlog, and Pos.GTID holds every transaction
// complete at that point.
type Frontier struct {
	Segment uint64
	Offset  int64
	Pos     binlog.Position
}

// Segment describes one relay segment file.
type Segment struct {
	Seq        uint64 // 1, 2, ...
	MasterFile string // the master binlog file its events come from
	Path       string
	Size       int64
}

const segmentPrefix = "relay-"

// segmentName names a segment "relay-000007.mysql-bin.000004": its sequence
// and the master file its events belong to.
func segmentName(seq uint64, masterFile string) string {
	return fmt.Sprintf("%s%06d.%s", segmentPrefix, seq, masterFile)
}

func parseSegmentName(name string) (uint64, string, bool) {
	if !strings.HasPrefix(name, segmentPrefix) {
		return 0, "", false
	}
	seqText, master, ok := strings.Cut(strings.TrimPrefix(name, segmentPrefix), ".")
	if !ok || master == "" {
		return 0, "", false
	}
	seq, err := strconv.ParseUint(seqText, 10, 64)
	if err != nil {
		return 0, "", false
	}
	return seq, master, true
}

// ListSegments returns the segments in dir, oldest first.
func ListSegments(dir string) ([]Segment, error) {
	ents, err := os.ReadDir(dir)
	if err != nil {
		if os.IsNotExist(err) {
			return nil, nil
		}
		return nil, fmt.Errorf("relay: list %s: %w", dir, err)
	}
	var segs []Segment
	for _, e := range ents {
		seq, master, ok := parseSegmentName(e.Name())
		if !ok || e.IsDir() {
			continue
		}
		info, err := e.Info()
		if err != nil {
			return nil, fmt.Errorf("relay: stat %s: %w", e.Name(), err)
		}
		segs = append(segs, Segment{Seq: seq, MasterFile: master, Path: filepath.Join(dir, e.Name()), Size: info.Size()})
	}
	sort.Slice(segs, func(i, j int) bool { return segs[i].Seq < segs[j].Seq })
	return segs, nil
}

// Writer is the writing end of the relay log. One goroutine owns it: every
// method must be called from that goroutine. It places the master's events
// by their log position, verifies each one's checksum, writes them verbatim
// into segment files and makes them durable in groups with Sync.
type Writer struct {
	cfg Config

	f           *os.File
	w           *bufio.Writer
	seg         Segment
	size        int64  // bytes written to the segment, buffered ones included
	fde         []byte // the segment's format description (its header)
	checksummed bool

	allocEnd   int64 // the segment is allocated (and that durable) up to here
	noPrealloc bool  // fallocate failed in this segment: just append

	tr       *binlog.TxnTracker
	file     string // master file the stream is in
	pos      uint64 // end of the last stored event in file; 0 = not placed yet
	boundary Frontier
	awaitTxn bool             // GTID start: store nothing before the first transaction
	lastType binlog.EventType // type of the last stored event

	// durable is the last boundary known to be on disk (with its GTID set),
	// and durableType the type of the event that ends there. A reset after
	// a failed write or a broken stream returns exactly here.
	durable     Frontier
	durableType binlog.EventType
}

// GTIDs returns the GTID set of the complete transactions written so far
// (a copy).
func (r *Writer) GTIDs() binlog.GTIDSet { return r.tr.GTIDs() }

// Written is what one call to Write did with an event.
type Written struct {
	Stored    bool           // the event went into the relay log
	Boundary  bool           // it ended a transaction (or stood between them)
	Heartbeat bool           // a heartbeat: the master is alive at Pos
	End       binlog.FilePos // the event's end in the master's binlog (when known)
	Header    binlog.Header
}

// Open opens the relay log in cfg.Dir, recovering its tail, and
// positions the writer after the last whole transaction. start is where the
// relay begins if it is empty, or the last checkpoint of a non-empty one
// (recovery scans forward from it, so it only needs to be at or before the
// real end). The returned frontier is the resume point.
func Open(cfg Config, start Frontier) (*Writer, Frontier, error) {
	if cfg.SegmentSize <= 0 {
		cfg.SegmentSize = 256 << 20
	}
	if cfg.Sync == nil {
		cfg.Sync = fdatasync
	}
	if cfg.Preallocate == 0 {
		cfg.Preallocate = 64 << 20
	}
	if err := os.MkdirAll(cfg.Dir, 0o700); err != nil {
		return nil, Frontier{}, fmt.Errorf("relay: create %s: %w", cfg.Dir, err)
	}
	r := &Writer{cfg: cfg}
	rec, err := recoverRelay(cfg.Dir, start, cfg.Acked)
	if err != nil {
		return nil, Frontier{}, err
	}
	r.tr = binlog.NewTxnTracker(rec.end.Pos.GTID)
	r.boundary = rec.end
	r.file, r.pos = rec.end.Pos.File, rec.end.Pos.Pos
	r.lastType = rec.lastType
	r.durable, r.durableType = rec.end, rec.lastType
	if rec.seg.Path != "" {
		f, err := os.OpenFile(rec.seg.Path, os.O_RDWR, 0o600)
		if err != nil {
			return nil, Frontier{}, fmt.Errorf("relay: open segment %s: %w", rec.seg.Path, err)
		}
		if _, err := f.Seek(rec.end.Offset, 0); err != nil {
			f.Close()
			return nil, Frontier{}, fmt.Errorf("relay: seek segment %s: %w", rec.seg.Path, err)
		}
		r.f, r.seg, r.size, r.fde = f, rec.seg, rec.end.Offset, rec.fde
		r.checksummed = binlog.FDEChecksumAlg(rec.fde) == 1
		r.w = bufio.NewWriterSize(f, 1<<20)
	}
	return r, rec.end, nil
}

// ExpectGTIDStart tells the writer that the stream starts from a GTID set:
// the master sends its file's header events before the first transaction,
// and those are not stored (they would leave a hole of positions).
func (r *Writer) ExpectGTIDStart() { r.awaitTxn = true }

// Boundary returns the end of the last whole transaction written (durable or
// not): the point a new stream must resume from. Its GTID set is a fresh
// copy: the tracker's set of complete transactions is by construction the
// set at the last boundary.
func (r *Writer) Boundary() Frontier {
	b := r.boundary
	b.Pos.GTID = r.tr.GTIDs()
	return b
}

// Write places one event from the stream (header, body and checksum, no
// packet or semi-sync bytes). The slice is not retained.
func (r *Writer) Write(ev []byte) (Written, error) {
	h, err := binlog.ParseHeader(ev)
	if err != nil {
		return Written{}, err
	}
	if int(h.Size) != len(ev) {
		return Written{}, fmt.Errorf("%w: header says %d bytes, got %d", binlog.ErrShortEvent, h.Size, len(ev))
	}
	out := Written{Header: h}
	switch {
	case h.Type == binlog.HeartbeatEvent:
		out.Heartbeat = true
		out.End = binlog.FilePos{File: r.file, Pos: uint64(h.LogPos)}
		return out, nil
	case h.Type == binlog.FormatDescriptionEvent:
		return out, r.onFormatDescription(ev)
	case h.Type == binlog.RotateEvent && (h.LogPos == 0 || h.Flags&binlog.FlagArtificial != 0):
		return out, r.onFakeRotate(ev)
	case h.LogPos == 0 || h.Flags&binlog.FlagArtificial != 0:
		return out, nil // artificial: not in the master's file
	}
	if r.checksummed {
		if err := binlog.VerifyChecksum(ev); err != nil {
			return Written{}, fmt.Errorf("relay: event at %s:%d: %w", r.file, h.Start(), err)
		}
	}
	if r.awaitTxn {
		if h.Type != binlog.MariaGTIDEvent && h.Type != binlog.MySQLGTIDEvent && h.Type != binlog.MySQLAnonymousGTID {
			return out, nil
		}
		r.awaitTxn = false
		r.pos = h.Start()
	}
	if r.pos != 0 && h.Start() != r.pos {
		return Written{}, fmt.Errorf("%w: event starts at %s:%d, relay ends at %s:%d", ErrPositionGap, r.file, h.Start(), r.file, r.pos)
	}
	if r.f == nil {
		return Written{}, fmt.Errorf("%w: event at %s:%d arrived before a format description", ErrPositionGap, r.file, h.Start())
	}
	if r.boundary.Offset == r.size && r.size >= r.cfg.SegmentSize {
		if err := r.roll(r.file, r.fde); err != nil {
			return Written{}, err
		}
	}
	if err := r.reserve(int64(len(ev))); err != nil {
		return Written{}, err
	}
	if _, err := r.w.Write(ev); err != nil {
		return Written{}, fmt.Errorf("relay: write segment %s: %w", r.seg.Path, err)
	}
	r.size += int64(len(ev))
	r.pos = uint64(h.LogPos)
	r.lastType = h.Type
	out.Stored, out.End = true, binlog.FilePos{File: r.file, Pos: r.pos}
	boundary, err := r.tr.FeedHeader(ev, h, r.checksummed)
	if err != nil {
		return Written{}, fmt.Errorf("relay: event at %s:%d: %w", r.file, h.Start(), err)
	}
	if h.Type == binlog.RotateEvent {
		next, err := binlog.RotateTarget(ev, r.checksummed)
		if err != nil {
			return Written{}, err
		}
		r.file, r.pos = next.File, 0
		// The stream now stands at the start of the next file: a boundary
		// there, so that a resume asks for the new file.
		r.boundary = Frontier{Segment: r.seg.Seq, Offset: r.size, Pos: binlog.Position{FilePos: binlog.FilePos{File: next.File, Pos: next.Pos}}}
		out.Boundary = boundary
		return out, nil
	}
	if boundary {
		out.Boundary = true
		r.boundary = Frontier{Segment: r.seg.Seq, Offset: r.size, Pos: binlog.Position{FilePos: out.End}}
	}
	return out, nil
}

// onFakeRotate takes the master's announcement of the file (and offset) the
// stream starts in. On a resume it must name exactly where the relay ends.
func (r *Writer) onFakeRotate(ev []byte) error {
	next, err := binlog.RotateTarget(ev, hasValidChecksum(ev))
	if err != nil {
		return err
	}
	if r.lastType == binlog.StopEvent && next.Pos == 4 {
		// The master stopped after the last stored event (a restart): its
		// file ends there and the stream continues in the next one.
		if c, err := next.Compare(binlog.FilePos{File: r.file, Pos: r.pos}); err == nil && c > 0 {
			r.file, r.pos = next.File, next.Pos
			return nil
		}
	}
	if r.pos != 0 && (next.File != r.file || next.Pos != r.pos) {
		return fmt.Errorf("%w: master starts the stream at %s, relay ends at %s:%d", ErrPositionGap, next, r.file, r.pos)
	}
	r.file, r.pos = next.File, next.Pos
	return nil
}

// onFormatDescription starts a new segment when the stream enters a master
// file the relay has no segment for; otherwise the event is the header the
// current segment already has.
func (r *Writer) onFormatDescription(ev []byte) error {
	h, _ := binlog.ParseHeader(ev)
	alg := binlog.FDEChecksumAlg(ev)
	if alg == 1 && h.LogPos != 0 {
		if err := binlog.VerifyChecksum(ev); err != nil {
			return fmt.Errorf("relay: format description of %s: %w", r.file, err)
		}
	}
	if r.file == "" {
		return fmt.Errorf("%w: format description before any rotate event", ErrPositionGap)
	}
	if r.f == nil || r.seg.MasterFile != r.file {
		if err := r.roll(r.file, ev); err != nil {
			return err
		}
	}
	r.checksummed = alg == 1
	if h.LogPos != 0 {
		r.pos = uint64(h.LogPos)
		r.boundary.Pos.FilePos = binlog.FilePos{File: r.file, Pos: r.pos}
		if r.durable.Segment == r.boundary.Segment && r.durable.Offset == r.boundary.Offset {
			r.durable.Pos.FilePos = r.boundary.Pos.FilePos
		}
	}
	return nil
}

// reserve makes sure the next n bytes fall inside the preallocated part of
// the segment. Preallocation is an optimisation only: when it fails (no
// space, no filesystem support) the writer appends, and fdatasync flushes
// the size with the data.
func (r *Writer) reserve(n int64) error {
	if r.size+n <= r.allocEnd || r.noPrealloc || r.cfg.Preallocate < 0 {
		return nil
	}
	chunk := max(r.cfg.Preallocate, n)
	if err := syscall.Fallocate(int(r.f.Fd()), 0, r.size, chunk); err != nil {
		r.noPrealloc = true
		return nil
	}
	// The allocation itself is metadata: make it durable once, so that the
	// fdatasyncs that follow have none left to write.
	if err := r.f.Sync(); err != nil {
		return fmt.Errorf("relay: sync segment %s: %w", r.seg.Path, err)
	}
	r.allocEnd = r.size + chunk
	return nil
}

// closeSegment makes the current segment durable at its exact size (the
// preallocated tail cut off) and closes it.
func (r *Writer) closeSegment() error {
	if err := r.w.Flush(); err != nil {
		return fmt.Errorf("relay: write segment %s: %w", r.seg.Path, err)
	}
	if err := r.f.Truncate(r.size); err != nil {
		return fmt.Errorf("relay: truncate segment %s: %w", r.seg.Path, err)
	}
	if err := r.f.Sync(); err != nil {
		return fmt.Errorf("relay: sync segment %s: %w", r.seg.Path, err)
	}
	if err := r.f.Close(); err != nil {
		return fmt.Errorf("relay: close segment %s: %w", r.seg.Path, err)
	}
	r.f, r.allocEnd, r.noPrealloc = nil, 0, false
	return nil
}

// roll closes the current segment (durably) and starts the next one with
// fde as its header. It is called only at a transaction boundary.
func (r *Writer) roll(masterFile string, fde []byte) error {
	seq := uint64(1)
	if r.f != nil {
		if err := r.closeSegment(); err != nil {
			return err
		}
		seq = r.seg.Seq + 1
	} else if r.seg.Seq != 0 {
		seq = r.seg.Seq + 1
	}
	path := filepath.Join(r.cfg.Dir, segmentName(seq, masterFile))
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return fmt.Errorf("relay: create segment %s: %w", path, err)
	}
	hdr := append(append(make([]byte, 0, len(binlog.Magic)+len(fde)), binlog.Magic...), fde...)
	if _, err := f.Write(hdr); err != nil {
		f.Close()
		os.Remove(path)
		return fmt.Errorf("relay: write segment %s: %w", path, err)
	}
	if err := r.cfg.Sync(f); err != nil {
		f.Close()
		os.Remove(path)
		return fmt.Errorf("relay: sync segment %s: %w", path, err)
	}
	if err := syncDir(r.cfg.Dir); err != nil {
		return err
	}
	r.f, r.seg, r.size = f, Segment{Seq: seq, MasterFile: masterFile, Path: path}, int64(len(hdr))
	r.fde = append([]byte(nil), fde...)
	if r.w == nil {
		r.w = bufio.NewWriterSize(f, 1<<20)
	} else {
		r.w.Reset(f)
	}
	pos := r.boundary.Pos.FilePos
	if pos.File != masterFile {
		pos = binlog.FilePos{File: masterFile, Pos: r.pos}
	}
	r.boundary = Frontier{Segment: seq, Offset: r.size, Pos: binlog.Position{FilePos: pos}}
	// Everything before the new segment was synced with the old one, and
	// the new header is synced: the new boundary is durable.
	r.durable = r.Boundary()
	r.durableType = r.lastType
	return nil
}

// Sync makes everything written so far durable and returns the end of the
// last stored event (what may be acknowledged) and the last whole-transaction
// boundary (what may be checkpointed).
func (r *Writer) Sync() (durable binlog.FilePos, boundary Frontier, err error) {
	if r.f == nil {
		return binlog.FilePos{}, r.durable, nil
	}
	if err := r.flushSync(); err != nil {
		return binlog.FilePos{}, Frontier{}, err
	}
	r.markDurable()
	return binlog.FilePos{File: r.file, Pos: r.pos}, r.durable, nil
}

// markDurable records the current boundary as durable; the caller has just
// synced everything written.
func (r *Writer) markDurable() {
	if r.durable.Segment == r.boundary.Segment && r.durable.Offset == r.boundary.Offset && r.durable.Pos.FilePos == r.boundary.Pos.FilePos {
		return // nothing new: keep the GTID snapshot
	}
	r.durable = r.Boundary()
	r.durableType = r.boundaryType()
}

// boundaryType is the type of the event that ends at the current boundary.
// Events after a boundary belong to an unfinished transaction, so the last
// stored event is the boundary's only when the writer stands on it.
func (r *Writer) boundaryType() binlog.EventType {
	if r.boundary.Offset == r.size {
		return r.lastType
	}
	return r.durableType
}

// Durable returns the last whole-transaction boundary known to be on disk:
// what may be checkpointed.
func (r *Writer) Durable() Frontier { return r.durable }

func (r *Writer) flushSync() error {
	if err := r.w.Flush(); err != nil {
		return fmt.Errorf("relay: write segment %s: %w", r.seg.Path, err)
	}
	if err := r.cfg.Sync(r.f); err != nil {
		return fmt.Errorf("relay: sync segment %s: %w", r.seg.Path, err)
	}
	return nil
}

// ResetToBoundary drops whatever follows the last durable whole-transaction
// boundary (a transaction the broken stream never finished, or a batch a
// failed write or fsync left behind), forgets the transactions it held, and
// returns the resume point.
func (r *Writer) ResetToBoundary() (Frontier, error) {
	b := r.durable
	r.tr = binlog.NewTxnTracker(b.Pos.GTID)
	r.awaitTxn = false
	r.boundary = Frontier{Segment: b.Segment, Offset: b.Offset, Pos: binlog.Position{FilePos: b.Pos.FilePos}}
	r.lastType = r.durableType
	r.file, r.pos = b.Pos.File, b.Pos.Pos
	if r.f == nil {
		return b, nil
	}
	if b.Segment != r.seg.Seq {
		return Frontier{}, fmt.Errorf("relay: durable boundary in segment %d, writer in %d", b.Segment, r.seg.Seq)
	}
	r.w.Reset(r.f) // discard buffered bytes of the dropped tail
	if err := r.f.Truncate(b.Offset); err != nil {
		return Frontier{}, fmt.Errorf("relay: truncate segment %s to %d: %w", r.seg.Path, b.Offset, err)
	}
	if _, err := r.f.Seek(b.Offset, 0); err != nil {
		return Frontier{}, fmt.Errorf("relay: seek segment %s: %w", r.seg.Path, err)
	}
	r.size, r.allocEnd = b.Offset, 0
	return b, nil
}

// Close flushes and syncs the current segment and closes it.
func (r *Writer) Close() error {
	if r.f == nil {
		return nil
	}
	err := r.closeSegment()
	if err != nil && r.f != nil {
		r.f.Close()
		r.f = nil
	}
	return err
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("relay: open dir %s: %w", dir, err)
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("relay: sync dir %s: %w", dir, err)
	}
	return nil
}

// hasValidChecksum reports whether the last four bytes of ev are its CRC32.
// The master sends its first fake rotate with or without one, depending on
// what the client declared.
func hasValidChecksum(ev []byte) bool {
	return len(ev) >= binlog.HeaderLen+4 && binlog.VerifyChecksum(ev) == nil
}
