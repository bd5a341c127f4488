package binlog

// tracker follows transaction boundaries through the events of one master,
// in order. It keeps the GTID set of complete transactions mutable inside
// (the writer's hot path must not copy it per transaction) and hands out
// immutable snapshots.
type tracker struct {
	flavor       Flavor
	inTxn        bool
	standalone   bool // MariaDB: FL_STANDALONE, ends at its first Query
	mysqlBegun   bool // MySQL: BEGIN seen after the GTID event
	pendingMaria GTID
	pendingMy    struct {
		sid [16]byte
		gno int64
		ok  bool
	}
	maria map[uint32]GTID
	mysql GTIDSet
}

func newTracker(start GTIDSet) *tracker {
	t := &tracker{flavor: start.flavor, mysql: start}
	if start.flavor == MariaDB {
		t.maria = make(map[uint32]GTID, len(start.mariadb)+1)
		for d, g := range start.mariadb {
			t.maria[d] = g
		}
	}
	return t
}

// gtids returns the GTID set of the complete transactions seen so far.
func (t *tracker) gtids() GTIDSet {
	if t.flavor == MariaDB {
		out := GTIDSet{flavor: MariaDB, mariadb: make(map[uint32]GTID, len(t.maria))}
		for d, g := range t.maria {
			out.mariadb[d] = g
		}
		return out
	}
	return t.mysql
}

// abort forgets a transaction that will never complete (the stream broke).
func (t *tracker) abort() {
	t.inTxn, t.standalone, t.mysqlBegun, t.pendingMy.ok = false, false, false, false
}

// feed takes the next stored event and reports whether the stream is between
// transactions after it (a boundary).
func (t *tracker) feed(ev []byte, h Header, checksummed bool) (boundary bool, err error) {
	switch h.Type {
	case MariaGTIDEvent:
		g, standalone, _, err := MariaGTID(ev, h)
		if err != nil {
			return false, err
		}
		if t.flavor == "" {
			t.flavor, t.maria = MariaDB, map[uint32]GTID{}
		}
		t.inTxn, t.standalone, t.pendingMaria = true, standalone, g
		return false, nil
	case MySQLGTIDEvent, MySQLAnonymousGTID:
		if t.flavor == "" {
			t.flavor, t.mysql = MySQL, NewGTIDSet(MySQL)
		}
		t.inTxn, t.mysqlBegun = true, false
		t.pendingMy.ok = false
		if h.Type == MySQLGTIDEvent {
			sid, gno, err := MySQLGTID(ev)
			if err != nil {
				return false, err
			}
			t.pendingMy.sid, t.pendingMy.gno, t.pendingMy.ok = sid, gno, true
		}
		return false, nil
	}
	if !t.inTxn {
		// Events between transactions: format description, rotate, GTID
		// list, binlog checkpoint, stop. A Query outside any GTID
		// transaction (a very old master) is its own transaction.
		return true, nil
	}
	end := false
	switch h.Type {
	case XIDEvent, XAPrepareEvent, 40: // 40: MySQL transaction payload (compressed transaction)
		end = true
	case QueryEvent:
		q := QueryText(ev, checksummed)
		switch {
		case t.standalone:
			end = true
		case t.flavor == MySQL && !t.mysqlBegun:
			if string(q) == "BEGIN" {
				t.mysqlBegun = true
			} else {
				end = true // DDL
			}
		default:
			end = isCommitQuery(q)
		}
	}
	if end {
		t.commit()
	}
	return end, nil
}

func (t *tracker) commit() {
	switch t.flavor {
	case MariaDB:
		t.maria[t.pendingMaria.Domain] = t.pendingMaria
	case MySQL:
		if t.pendingMy.ok {
			t.mysql = t.mysql.AddMySQL(t.pendingMy.sid, t.pendingMy.gno)
		}
	}
	t.abort()
}

// TxnTracker follows transaction boundaries through a stream of stored
// events, in order: the same rules the relay log cuts and checkpoints by.
type TxnTracker struct{ t *tracker }

// NewTxnTracker starts a tracker whose set of complete transactions is
// start.
func NewTxnTracker(start GTIDSet) *TxnTracker { return &TxnTracker{t: newTracker(start)} }

// Feed takes the next event and reports whether it ends a transaction (or
// stands between transactions).
func (x *TxnTracker) Feed(ev []byte, checksummed bool) (boundary bool, err error) {
	h, err := ParseHeader(ev)
	if err != nil {
		return false, err
	}
	return x.t.feed(ev, h, checksummed)
}

// FeedHeader is Feed for a caller that already parsed the event's header.
func (x *TxnTracker) FeedHeader(ev []byte, h Header, checksummed bool) (boundary bool, err error) {
	return x.t.feed(ev, h, checksummed)
}

// InTransaction reports whether the last event fed was inside a transaction
// that has not ended.
func (x *TxnTracker) InTransaction() bool { return x.t.inTxn }

// GTIDs returns the set of complete transactions fed so far (a copy).
func (x *TxnTracker) GTIDs() GTIDSet { return x.t.gtids() }

// Abort forgets an unfinished transaction.
func (x *TxnTracker) Abort() { x.t.abort() }
