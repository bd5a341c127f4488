package binlogserver

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/go-mysql-org/go-mysql/mysql"

	"github.com/hotstandby/hotstandby/binlog"
	"github.com/hotstandby/hotstandby/relay"
)

// Dump flags: BINLOG_DUMP_NON_BLOCK (end with an EOF packet at the end of
// what there is, as mariadb-binlog without --stop-never asks) and
// BINLOG_SEND_ANNOTATE_ROWS_EVENT.
const (
	dumpFlagNonBlock = 0x01
	dumpFlagAnnotate = 0x02
)

// writeTimeout bounds one write to a replica that stopped reading.
const writeTimeout = time.Minute

// dump answers COM_BINLOG_DUMP: it locates the start, then streams until
// the replica goes, the server closes or a write fails. An ERR packet is
// the answer only when no event was sent yet; after the first event the
// connection is closed instead.
func (h *session) dump(data []byte) error {
	if len(data) < 10 {
		return mysql.NewError(mysql.ER_MALFORMED_PACKET, "hotstandby binlog server: COM_BINLOG_DUMP packet is too short")
	}
	pos := uint64(binary.LittleEndian.Uint32(data))
	flags := binary.LittleEndian.Uint16(data[4:])
	if id := binary.LittleEndian.Uint32(data[6:]); id != 0 {
		h.serverID = id
	}
	file := strings.TrimRight(string(data[10:]), "\x00")
	ctx, cancel := context.WithCancel(h.ctx)
	defer cancel()
	st, err := h.newStream(file, pos, flags&dumpFlagAnnotate != 0)
	if err != nil {
		return err
	}
	r := &replica{Replica: Replica{ServerID: h.serverID, Addr: h.addr, Since: time.Now(), Mode: st.mode(), Requested: st.requested(),
		SemiSync: h.semiSync},
		cancel: cancel, need: oldestSegment(h.s.cfg.RelayDir)}
	st.r = r
	st.nonBlock = flags&dumpFlagNonBlock != 0
	connID := h.conn.ConnectionID()
	h.s.register(connID, r)
	defer h.s.unregister(connID, r)
	defer func() { st.cur.Close() }() // locate may replace the cursor
	h.s.log.Info("replica asks for a dump", "addr", h.addr, "server_id", h.serverID, "mode", r.Mode, "from", r.Requested,
		"heartbeat", h.heartbeat, "semi_sync", h.semiSync)
	first, err := st.locate(ctx, false)
	if err != nil {
		var me *mysql.MyError
		if errors.As(err, &me) {
			h.s.log.Warn("replica refused", "addr", h.addr, "server_id", h.serverID, "err", me.Message)
		}
		return err
	}
	// From here on the connection carries events only. A replica sends
	// nothing during a dump but its semi-sync ACKs: a read that returns
	// anything else means it went away.
	raw := h.conn.Conn.Conn
	go func() {
		defer cancel()
		defer h.s.recoverConn(h.addr, raw)
		if !h.semiSync {
			var b [1]byte
			_, _ = raw.Read(b[:])
			return
		}
		if err := st.readAcks(raw); err != nil && ctx.Err() == nil && !h.conn.Closed() {
			h.s.log.Info("replica's semi-sync ACKs ended", "addr", h.addr, "server_id", h.serverID, "reason", err)
		}
	}()
	st.pw = newPacketWriter(raw, h.conn.Sequence, writeTimeout)
	st.pw.semi = h.semiSync
	h.dumpErr = st.run(ctx, first)
	h.conn.Close()
	return h.dumpErr
}

// stream is one replica's dump: the cursor, what the replica has, and the
// position it was told.
type stream struct {
	s  *Server
	h  *session
	r  *replica
	pw *packetWriter

	cur      *relay.Cursor
	annotate bool
	nonBlock bool // end at the durable end with an EOF packet

	// GTID mode: the replica's state, per domain.
	gtidMode bool
	state    map[uint32]binlog.GTID
	strict   bool
	seen     map[uint32]binlog.GTID // the first GTID of each state domain met in the relay
	exact    map[uint32]bool        // the state's own GTID was met
	// File mode: the start position.
	startAt binlog.FilePos

	unknown   bool   // locate met no durable frontier yet: run locates again
	placed    bool   // the cursor was moved to the start's segment
	started   bool   // the preamble and the first event went out
	file      string // the master file the replica is in
	pos       uint32 // the replica's position in it
	skip      bool   // the current group is one the replica has
	tracker   *binlog.TxnTracker
	curGTID   binlog.GTID
	sent      map[uint32]binlog.GTID // the last GTID sent whole, per domain
	sentGTIDs binlog.GTIDSet         // the replica's state as it asked
	bytes     uint64
	events    uint64
	counted   uint64 // bytes already added to the server's counter
	unflushed uint64 // events written since the last flush
	lastSend  time.Time
	preambled bool
	ackNext   bool   // the event filter passed last ends a transaction: ask for an ACK
	fdeFile   string // the master file whose FDE was sent last
	hbTimer   *time.Timer
}

func (h *session) newStream(file string, pos uint64, annotate bool) (*stream, error) {
	st := &stream{s: h.s, h: h, cur: relay.NewCursor(h.s.cfg.RelayDir, relay.Frontier{}), annotate: annotate,
		tracker: binlog.NewTxnTracker(binlog.NewGTIDSet(binlog.MariaDB)), sentGTIDs: binlog.NewGTIDSet(binlog.MariaDB),
		sent: map[uint32]binlog.GTID{}}
	if h.connectState == nil {
		if file == "" {
			return nil, fatal("the replica asked for a dump without a file name and without @slave_connect_state")
		}
		st.startAt = binlog.FilePos{File: file, Pos: max(pos, 4)}
		return st, nil
	}
	set, err := binlog.ParseGTIDSet(binlog.MariaDB, *h.connectState)
	if err != nil {
		return nil, fatal(fmt.Sprintf("@slave_connect_state %q: %v", *h.connectState, err))
	}
	st.gtidMode, st.strict = true, h.strict
	st.state, st.seen, st.exact = map[uint32]binlog.GTID{}, map[uint32]binlog.GTID{}, map[uint32]bool{}
	for _, g := range set.MariaDBGTIDs() {
		st.state[g.Domain] = g
		st.sent[g.Domain] = g
	}
	st.sentGTIDs = set
	return st, nil
}

func (st *stream) mode() string {
	if st.gtidMode {
		return "gtid"
	}
	return "file"
}

func (st *stream) requested() string {
	if st.gtidMode {
		return st.sentGTIDs.String()
	}
	return st.startAt.String()
}

// fatal is the ERR 1236 a master answers a dump it cannot serve with.
func fatal(msg string) *mysql.MyError {
	return mysql.NewError(mysql.ER_MASTER_FATAL_ERROR_READING_BINLOG, "hotstandby relay log: "+msg)
}

// durable returns the durable frontier and a channel closed when it moves
// again. From a Watcher both come from one publication; from a polled
// Source the channel is taken first. Either way a move after the frontier
// was read closes the channel: no move is missed.
func (st *stream) durable() (relay.Frontier, <-chan struct{}) {
	if w := st.s.watcher; w != nil {
		return w.DurableWatch()
	}
	ch := st.s.waitChan()
	return st.s.cfg.Source.Durable(), ch
}

// locate reads the relay log up to the first event to send. It returns
// that event (a copy), or nil when the replica already has everything
// durable, or the ERR 1236 for a start the relay log cannot serve.
//
// While the durable frontier is unknown (zero: the agent has not recovered
// its relay log yet, or the relay log is empty) nothing can be located nor
// judged: without wait, locate returns nil with st.unknown set, and the
// caller, once it watches the connection, calls it again with wait to wait
// for the frontier. Taking the zero frontier for "caught up" sent a fake
// Rotate naming no file (""), and no Rotate naming the master's file
// followed: a MariaDB 10.11 parallel replica then crashed (signal 11 in
// compare_log_name) at the end of its first transaction.
func (st *stream) locate(ctx context.Context, wait bool) ([]byte, error) {
	for {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		d, moved := st.durable()
		if d.Segment == 0 {
			if !wait {
				st.unknown = true
				return nil, nil
			}
			select {
			case <-ctx.Done():
				return nil, ctx.Err()
			case <-moved:
			}
			continue
		}
		st.unknown = false
		if !st.placed {
			st.place(d)
		}
		ev, _, err := st.cur.Next(d)
		if errors.Is(err, relay.ErrCaughtUp) {
			return nil, st.checkCaughtUp(d)
		}
		if err != nil {
			return nil, fatal(err.Error())
		}
		st.noteSegment()
		send, err := st.filter(ev)
		if err != nil {
			return nil, err
		}
		if send {
			return append([]byte(nil), ev...), nil
		}
	}
}

// place moves the cursor, before its first event, to the segment where
// the replica's start is (see fileModeStart and gtidModeStart), instead of
// the oldest one.
func (st *stream) place(d relay.Frontier) {
	st.placed = true
	var f relay.Frontier
	if st.gtidMode {
		var exact map[uint32]bool
		f, exact = gtidModeStart(st.s.cfg.RelayDir, st.state, d)
		if f.Segment != 0 {
			for dom := range exact {
				st.exact[dom] = true
			}
		}
	} else {
		f = fileModeStart(st.s.cfg.RelayDir, st.startAt, d)
	}
	if f.Segment != 0 {
		st.cur.Close()
		st.cur = relay.NewCursor(st.s.cfg.RelayDir, f)
	}
}

func (st *stream) noteSegment() {
	if seg := st.cur.Segment().Seq; seg != st.r.need {
		st.s.update(st.r, func(r *replica) { r.need, r.Segment = seg, seg })
	}
}

// filter decides whether ev goes to the replica. In GTID mode a group the
// replica has is skipped whole, and nothing goes before the first group it
// lacks; in file mode everything from the requested event on goes.
func (st *stream) filter(ev []byte) (bool, error) {
	h, err := binlog.ParseHeader(ev)
	if err != nil {
		return false, fatal(err.Error())
	}
	inGroup := st.tracker.InTransaction()
	boundary, err := st.tracker.FeedHeader(ev, h, st.cur.Checksummed())
	if err != nil {
		return false, fatal(err.Error())
	}
	// The event that ends a transaction (its XID or COMMIT, or a DDL's
	// Query) is the one a semi-sync replica ACKs, as a MariaDB master asks.
	st.ackNext = inGroup && boundary
	if h.Type == binlog.MariaAnnotateRows && !st.annotate {
		return false, nil
	}
	if !st.gtidMode {
		if !st.started {
			return st.fileStart(h)
		}
		return true, nil
	}
	if h.Type == binlog.MariaGTIDEvent {
		g, _, _, err := binlog.MariaGTID(ev, h)
		if err != nil {
			return false, fatal(err.Error())
		}
		st.curGTID = g
		if st.skip, err = st.skipGroup(g); err != nil {
			return false, err
		}
		if !st.skip {
			st.started = true
		}
		return !st.skip, nil
	}
	if inGroup {
		if boundary && !st.skip {
			st.sent[st.curGTID.Domain] = st.curGTID
		}
		return !st.skip, nil
	}
	return st.started, nil
}

// fileStart decides, in file mode, whether the event is the requested start.
func (st *stream) fileStart(h binlog.Header) (bool, error) {
	file := st.cur.Segment().MasterFile
	at := binlog.FilePos{File: file, Pos: h.Start()}
	if file == st.startAt.File && (h.Start() == st.startAt.Pos || (st.startAt.Pos <= 4 && h.LogPos != 0)) {
		st.started = true
		return true, nil
	}
	if file == st.startAt.File && h.Start() < st.startAt.Pos {
		return false, nil // before the start, in its file
	}
	if c, err := at.Compare(st.startAt); err == nil && c > 0 {
		return false, fatal(fmt.Sprintf("position %s requested by the replica is not the start of an event in the relay log (next event starts at %s); the relay holds %s",
			st.startAt, at, st.held()))
	}
	return false, nil
}

// skipGroup says whether the replica has the group g begins, and refuses a
// state the relay log cannot continue.
func (st *stream) skipGroup(g binlog.GTID) (bool, error) {
	if !st.gtidMode {
		return !st.started, nil
	}
	want, ok := st.state[g.Domain]
	if !ok {
		return false, nil
	}
	first, seen := st.seen[g.Domain]
	if !seen {
		st.seen[g.Domain], first = g, g
	}
	switch {
	case g.Seq < want.Seq:
		return true, nil
	case g.Seq == want.Seq:
		if g.Server != want.Server && st.strict {
			return false, fatal(fmt.Sprintf("the replica has GTID %s but the relay log has %s with that sequence number in domain %d: the replica has diverged from the master; rebuild it",
				want, g, g.Domain))
		}
		st.exact[g.Domain] = true
		return true, nil
	}
	if !st.exact[g.Domain] {
		if g == first && g.Seq > want.Seq+1 {
			return false, fatal(fmt.Sprintf("GTID %s requested by the replica is not in the relay log (purged, or from before the agent started): domain %d starts at %s there; the relay holds %s; rebuild the replica from a backup at or after %s",
				want, g.Domain, first, st.held(), first))
		}
		if st.strict && g.Seq > want.Seq+1 {
			return false, fatal(fmt.Sprintf("GTID %s requested by the replica is not in the relay log: domain %d goes on at %s there; the relay holds %s", want, g.Domain, g, st.held()))
		}
	}
	delete(st.state, g.Domain) // past the replica's state in this domain
	return false, nil
}

// checkCaughtUp is locate's verdict when the relay log ends before any
// event to send: the replica must not be ahead of it, nor need a domain
// it no longer holds.
func (st *stream) checkCaughtUp(d relay.Frontier) error {
	if !st.gtidMode {
		if d.Pos.FilePos == st.startAt || (st.startAt.Pos <= 4 && d.Pos.FilePos.File == st.startAt.File) {
			return nil
		}
		return fatal(fmt.Sprintf("position %s requested by the replica is not in the relay log; the relay holds %s", st.startAt, st.held()))
	}
	last := map[uint32]binlog.GTID{}
	for _, g := range d.Pos.GTID.MariaDBGTIDs() {
		last[g.Domain] = g
	}
	for dom, want := range st.state {
		have, ok := last[dom]
		switch {
		case !ok:
			continue // nothing known of the domain: nothing to refuse
		case have.Seq < want.Seq:
			return fatal(fmt.Sprintf("the replica is at GTID %s but the relay log ends at %s in domain %d: the replica has transactions the agent never received; rebuild it or check its master",
				want, have, dom))
		case have.Seq > want.Seq && !st.exact[dom]:
			if _, seen := st.seen[dom]; !seen {
				return fatal(fmt.Sprintf("GTID %s requested by the replica is not in the relay log (purged): the relay has no transaction of domain %d after it, though it is at %s; the relay holds %s",
					want, dom, have, st.held()))
			}
		}
	}
	return nil
}

// held describes what the relay log holds: its first position and the
// durable end.
func (st *stream) held() string {
	segs, err := relay.ListSegments(st.s.cfg.RelayDir)
	if err != nil || len(segs) == 0 {
		return "nothing (the relay log is empty)"
	}
	d := st.s.cfg.Source.Durable()
	from := segs[0].MasterFile
	if first, ok := firstGTIDs(segs[0].Path); ok {
		from += " (first GTIDs " + first + ")"
	}
	return fmt.Sprintf("%d segment(s) from %s up to %s (GTIDs %s)", len(segs), from, d.Pos.FilePos, d.Pos.GTID)
}

// firstGTIDs returns the first GTID of each domain in one segment.
func firstGTIDs(path string) (string, bool) {
	r, err := relay.OpenSegment(path)
	if err != nil {
		return "", false
	}
	defer r.Close()
	first := binlog.NewGTIDSet(binlog.MariaDB)
	seen := map[uint32]bool{}
	for range 100000 {
		ev, err := r.Next()
		if err != nil {
			break
		}
		h, _ := binlog.ParseHeader(ev)
		if h.Type != binlog.MariaGTIDEvent {
			continue
		}
		if g, _, _, err := binlog.MariaGTID(ev, h); err == nil && !seen[g.Domain] {
			seen[g.Domain] = true
			first = first.AddMariaDB(g)
		}
	}
	return first.String(), !first.IsZero()
}

// relayChecksummed reports whether the newest relay segment's events carry
// CRC32 (false, false with no segment).
func relayChecksummed(dir string) (bool, bool) {
	segs, err := relay.ListSegments(dir)
	if err != nil || len(segs) == 0 {
		return false, false
	}
	r, err := relay.OpenSegment(segs[len(segs)-1].Path)
	if err != nil {
		return false, false
	}
	defer r.Close()
	return r.Checksummed(), true
}
