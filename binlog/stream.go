package binlog

import (
	"context"
	"crypto/tls"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"strconv"
	"strings"
	"time"

	"github.com/go-mysql-org/go-mysql/client"
	gomysql "github.com/go-mysql-org/go-mysql/mysql"
)

// SourceConfig says how to reach the master as a replica.
type SourceConfig struct {
	Addr     string // host:port
	User     string
	Password string // never logged, never in an error
	// ServerID is the replica's server_id; it must differ from the master's
	// and from every other replica's.
	ServerID uint32
	// ReportHost names this agent in SHOW SLAVE HOSTS. It tells the agent's
	// own earlier connections apart from another replica's.
	ReportHost string
	// Heartbeat is the master's heartbeat period while the binlog is idle.
	Heartbeat time.Duration
	// ReadTimeout bounds the wait for the next packet; it must exceed
	// Heartbeat, so that only a silent master trips it.
	ReadTimeout    time.Duration
	ConnectTimeout time.Duration
	// SemiSync registers the connection as a semi-sync replica.
	SemiSync bool
	Logger   *slog.Logger
	// TLS, when not nil, switches the connection to TLS after the master's
	// greeting. With TLSFallback, a master whose greeting offers no TLS is
	// spoken to in plain text (a failed handshake or verification never is);
	// OnPlaintext, if set, is called for every connection made without TLS.
	TLS         *tls.Config
	TLSFallback bool
	OnPlaintext func()
}

// Identity is who the master is: the values that must not change between
// two runs of the agent.
type Identity struct {
	ServerID   uint32 // @@server_id
	ServerUUID string // @@server_uuid (MySQL only)
	Flavor     Flavor
	Version    string // @@version
}

// String formats the identity for messages.
func (id Identity) String() string {
	s := fmt.Sprintf("%s server_id=%d", id.Flavor, id.ServerID)
	if id.ServerUUID != "" {
		s += " server_uuid=" + id.ServerUUID
	}
	return s
}

// Conn is one replication connection to the master. ReadEvent is called from
// one goroutine; AckWriter may be written from another (the socket takes a
// concurrent reader and writer).
type Conn struct {
	cfg SourceConfig
	c   *client.Conn
	id  Identity
}

// Dial connects and authenticates.
func Dial(ctx context.Context, cfg SourceConfig) (*Conn, error) {
	c, err := connect(ctx, cfg, cfg.TLS)
	if err != nil && cfg.TLS != nil && cfg.TLSFallback && strings.Contains(err.Error(), noTLSOffered) {
		c, err = connect(ctx, cfg, nil)
	}
	if err != nil {
		return nil, connectError(ctx, cfg, err)
	}
	if _, tlsOn := c.Conn.Conn.(*tls.Conn); !tlsOn && cfg.OnPlaintext != nil {
		cfg.OnPlaintext()
	}
	conn := &Conn{cfg: cfg, c: c}
	if conn.id, err = conn.identity(); err != nil {
		c.Close()
		return nil, err
	}
	return conn, nil
}

// noTLSOffered is go-mysql's error when TLS is configured and the server's
// greeting lacks CLIENT_SSL (client/auth.go); only then may preferred fall
// back to plain text.
const noTLSOffered = "does not support TLS"

// ErrSecureTransportRequired is MySQL's ER_SECURE_TRANSPORT_REQUIRED: the
// server runs with require_secure_transport=ON and refuses plain TCP.
// MariaDB has no such error: it answers Access denied (1045).
const ErrSecureTransportRequired = 3159

func connect(ctx context.Context, cfg SourceConfig, tc *tls.Config) (*client.Conn, error) {
	d := &net.Dialer{Timeout: cfg.ConnectTimeout, KeepAlive: 30 * time.Second}
	return client.ConnectWithDialer(ctx, "tcp", cfg.Addr, cfg.User, cfg.Password, "", d.DialContext,
		func(c *client.Conn) error {
			c.ReadTimeout = cfg.ReadTimeout
			c.BufferSize = 1 << 20
			c.SetAttributes(map[string]string{"program_name": "hotstandby"})
			if tc != nil {
				c.SetTLSConfig(tc)
			}
			return nil
		})
}

// connectError names what went wrong in one line. A certificate that fails
// verification and a master that demands TLS from a client without it are
// permanent: retrying cannot help until the configuration changes.
func connectError(ctx context.Context, cfg SourceConfig, err error) error {
	se := &SourceError{Op: "connect to " + cfg.Addr, Err: scrub(err, cfg.Password)}
	var cv *tls.CertificateVerificationError
	switch {
	case errors.As(err, &cv):
		se.Err, se.Permanent = fmt.Errorf("TLS: the master's certificate was refused: %w", cv.Err), true
	case cfg.TLS == nil && (ServerErrorCode(err) == ErrSecureTransportRequired || ServerErrorCode(err) == 1045 && acceptsWithTLS(ctx, cfg)):
		se.Err, se.Permanent = errors.New(requiresTLS), true
	case cfg.TLS != nil && !cfg.TLSFallback && strings.Contains(err.Error(), noTLSOffered):
		se.Err, se.Permanent = errors.New("the master offers no TLS (no ssl_cert/ssl_key) and the agent requires it: configure TLS on the master or lower tls in the [master] section"), true
	}
	return se
}

// requiresTLS is the line for a master that refuses the agent in plain text
// but accepts it over TLS.
const requiresTLS = "the master requires TLS (require_secure_transport=ON or a user created REQUIRE SSL; MariaDB answers both with Access denied) and the agent connects without it (tls = \"off\"): set tls in the [master] section"

// acceptsWithTLS tells "access denied" from "plain text refused": MariaDB
// answers a plain connection under require_secure_transport=ON, or of a user
// REQUIRE SSL, with the same error 1045 as a wrong password. One attempt over
// TLS (not verified: it only diagnoses, and the password's challenge already
// crossed in plain text) that logs in means the credentials are right and TLS
// is what is missing.
func acceptsWithTLS(ctx context.Context, cfg SourceConfig) bool {
	c, err := connect(ctx, cfg, &tls.Config{InsecureSkipVerify: true, MinVersion: tls.VersionTLS12})
	if err != nil {
		return false
	}
	c.Quit()
	return true
}

// Identity returns who the master is.
func (c *Conn) Identity() Identity { return c.id }

// Query runs a statement on the connection (before StartDump only) and
// returns its rows as strings.
func (c *Conn) Query(q string) ([][]string, error) {
	r, err := c.c.Execute(q)
	if err != nil {
		return nil, &SourceError{Op: "query " + firstWords(q), Err: scrub(err, c.cfg.Password)}
	}
	defer r.Close()
	out := make([][]string, r.RowNumber())
	for i := range out {
		out[i] = make([]string, r.ColumnNumber())
		for j := range out[i] {
			v, _ := r.GetString(i, j)
			out[i][j] = strings.Clone(v) // go-mysql reuses the packet buffer
		}
	}
	return out, nil
}

func firstWords(q string) string {
	f := strings.Fields(q)
	if len(f) > 3 {
		f = f[:3]
	}
	return strings.Join(f, " ")
}

func (c *Conn) identity() (Identity, error) {
	rows, err := c.Query("SELECT @@server_id, @@version")
	if err != nil {
		return Identity{}, err
	}
	id, _ := strconv.ParseUint(rows[0][0], 10, 32)
	out := Identity{ServerID: uint32(id), Version: rows[0][1], Flavor: MySQL}
	if strings.Contains(strings.ToLower(out.Version), "mariadb") {
		out.Flavor = MariaDB
	} else {
		rows, err := c.Query("SELECT @@server_uuid")
		if err != nil {
			return Identity{}, err
		}
		out.ServerUUID = rows[0][0]
	}
	return out, nil
}

// MasterStatus returns the master's current binlog position (SHOW MASTER
// STATUS) with the GTID state at exactly that position: on MariaDB the
// @@gtid_binlog_pos the binlog had there, on MySQL the status row's own
// Executed_Gtid_Set. The two are one fact: a first start takes the pair as
// the relay log's base, and a GTID set newer than the position would claim
// transactions the relay never receives.
//
// MariaDB answers the position and the GTID state in two statements, and
// under load transactions commit between them. So it reads the position,
// the state, and the position again: the same position twice means no
// transaction was written in between (both reads take the binlog's lock,
// under which a transaction's GTID and its events are written), and the
// state is the position's. After stableReads tries that saw commits, the
// server computes the state at the last position read
// (BINLOG_GTID_POS(file, pos), which reads that binlog file up to pos).
func (c *Conn) MasterStatus() (Position, error) {
	return masterStatus(c, c.id.Flavor)
}

// stableReads is how many times MasterStatus tries a position, state,
// position read before asking BINLOG_GTID_POS.
const stableReads = 3

// querier is what masterStatus asks the master (a *Conn before its dump).
type querier interface {
	Query(q string) ([][]string, error)
}

func masterStatus(c querier, flavor Flavor) (Position, error) {
	if flavor == MySQL {
		return mysqlMasterStatus(c)
	}
	for range stableReads {
		before, err := showMasterStatus(c, "SHOW MASTER STATUS")
		if err != nil {
			return Position{}, err
		}
		state, err := gtidQuery(c, MariaDB, "SELECT @@GLOBAL.gtid_binlog_pos")
		if err != nil {
			return Position{}, err
		}
		after, err := showMasterStatus(c, "SHOW MASTER STATUS")
		if err != nil {
			return Position{}, err
		}
		if after.row == before.row {
			return Position{FilePos: after.pos, GTID: state}, nil
		}
	}
	at, err := showMasterStatus(c, "SHOW MASTER STATUS")
	if err != nil {
		return Position{}, err
	}
	state, err := gtidQuery(c, MariaDB, BinlogGTIDPosQuery(at.pos))
	if err != nil {
		return Position{}, err
	}
	return Position{FilePos: at.pos, GTID: state}, nil
}

// mysqlMasterStatus reads MySQL's status row, whose Executed_Gtid_Set is
// the state at its position (one statement).
func mysqlMasterStatus(c querier) (Position, error) {
	st, err := showMasterStatus(c, "SHOW BINARY LOG STATUS")
	if err != nil {
		if st, err = showMasterStatus(c, "SHOW MASTER STATUS"); err != nil {
			return Position{}, err
		}
	}
	if len(st.cols) < 5 {
		return Position{}, &SourceError{Op: "SHOW MASTER STATUS", Err: errors.New("no Executed_Gtid_Set column"), Permanent: true}
	}
	set, err := ParseGTIDSet(MySQL, strings.ReplaceAll(st.cols[4], "\n", ""))
	if err != nil {
		return Position{}, &SourceError{Op: "SHOW MASTER STATUS", Err: fmt.Errorf("Executed_Gtid_Set %q: %w", st.cols[4], err)}
	}
	return Position{FilePos: st.pos, GTID: set}, nil
}

// statusRow is one answer of SHOW MASTER STATUS.
type statusRow struct {
	pos  FilePos
	row  string // the whole row, to tell two answers apart
	cols []string
}

func showMasterStatus(c querier, q string) (statusRow, error) {
	rows, err := c.Query(q)
	if err != nil {
		return statusRow{}, err
	}
	if len(rows) == 0 || len(rows[0]) < 2 {
		return statusRow{}, &SourceError{Op: q, Err: errors.New("binary logging is off on the master (log_bin)"), Permanent: true}
	}
	pos, err := strconv.ParseUint(rows[0][1], 10, 64)
	if err != nil {
		return statusRow{}, &SourceError{Op: q, Err: fmt.Errorf("position %q: %w", rows[0][1], err)}
	}
	return statusRow{pos: FilePos{File: rows[0][0], Pos: pos}, row: rows[0][0] + ":" + rows[0][1], cols: rows[0]}, nil
}

// BinlogGTIDPosQuery is the statement that asks a MariaDB master for the
// GTID state its binlog has at p (BINLOG_GTID_POS), answering the text NULL
// where the function answers NULL: p is no event boundary, or its file is
// not there.
func BinlogGTIDPosQuery(p FilePos) string {
	return fmt.Sprintf("SELECT IFNULL(BINLOG_GTID_POS('%s', %d), 'NULL')", strings.ReplaceAll(p.File, "'", "''"), p.Pos)
}

// gtidQuery runs a query that answers one GTID set. NULL (BINLOG_GTID_POS
// of a position that is no event boundary, or of a purged file) is an
// error the caller retries.
func gtidQuery(c querier, flavor Flavor, q string) (GTIDSet, error) {
	rows, err := c.Query(q)
	if err != nil {
		return GTIDSet{}, err
	}
	if len(rows) != 1 || len(rows[0]) != 1 || strings.EqualFold(rows[0][0], "NULL") {
		return GTIDSet{}, &SourceError{Op: firstWords(q), Err: fmt.Errorf("no GTID state in the answer %q", rows)}
	}
	set, err := ParseGTIDSet(flavor, strings.ReplaceAll(rows[0][0], "\n", ""))
	if err != nil {
		return GTIDSet{}, &SourceError{Op: firstWords(q), Err: fmt.Errorf("%q: %w", rows[0][0], err)}
	}
	return set, nil
}

// DumpFrom is where a dump starts: a file position, or (GTID set non-empty
// and UseGTID) after a GTID set.
type DumpFrom struct {
	File    FilePos
	GTID    GTIDSet
	UseGTID bool
}

// dump command flags
const sendAnnotateRows = 0x02

// StartDump registers as a replica and asks for the binlog from `from`.
func (c *Conn) StartDump(from DumpFrom) error {
	setup := []string{
		// The events still carry their CRC32; the agent verifies it.
		"SET @master_binlog_checksum='NONE', @source_binlog_checksum='NONE'",
		fmt.Sprintf("SET @master_heartbeat_period=%d, @source_heartbeat_period=%d", c.cfg.Heartbeat.Nanoseconds(), c.cfg.Heartbeat.Nanoseconds()),
	}
	if c.id.Flavor == MariaDB {
		setup = append(setup, "SET @mariadb_slave_capability=4")
	}
	if c.cfg.SemiSync {
		setup = append(setup, "SET @rpl_semi_sync_slave=1, @rpl_semi_sync_replica=1")
	}
	for _, q := range setup {
		if _, err := c.c.Execute(q); err != nil {
			return &SourceError{Op: "prepare dump (" + firstWords(q) + ")", Err: scrub(err, c.cfg.Password)}
		}
	}
	if err := c.register(); err != nil {
		return err
	}
	switch {
	case from.UseGTID && c.id.Flavor == MariaDB:
		q := fmt.Sprintf("SET @slave_connect_state='%s', @slave_gtid_strict_mode=1", from.GTID.String())
		if _, err := c.c.Execute(q); err != nil {
			return &SourceError{Op: "set GTID start " + from.GTID.String(), Err: err, Permanent: true}
		}
		return c.writeDump(FilePos{Pos: 4})
	case from.UseGTID:
		return c.writeDumpMySQLGTID(from.GTID)
	}
	return c.writeDump(from.File)
}

func (c *Conn) register() error {
	host := c.cfg.ReportHost
	if len(host) > 255 {
		host = host[:255]
	}
	user := c.cfg.User
	if len(user) > 255 {
		user = user[:255]
	}
	p := make([]byte, 4, 4+1+4+1+len(host)+1+len(user)+1+2+4+4)
	p = append(p, gomysql.COM_REGISTER_SLAVE)
	p = binary.LittleEndian.AppendUint32(p, c.cfg.ServerID)
	p = append(p, byte(len(host)))
	p = append(p, host...)
	p = append(p, byte(len(user)))
	p = append(p, user...)
	p = append(p, 0) // password: not sent
	p = binary.LittleEndian.AppendUint16(p, 0)
	p = binary.LittleEndian.AppendUint32(p, 0)
	p = binary.LittleEndian.AppendUint32(p, 0)
	c.c.ResetSequence()
	if err := c.c.WritePacket(p); err != nil {
		return &SourceError{Op: "register as replica", Err: err}
	}
	if _, err := c.c.ReadOKPacket(); err != nil {
		return &SourceError{Op: "register as replica", Err: scrub(err, c.cfg.Password)}
	}
	return nil
}

func (c *Conn) writeDump(from FilePos) error {
	p := make([]byte, 4, 4+1+4+2+4+len(from.File))
	p = append(p, gomysql.COM_BINLOG_DUMP)
	p = binary.LittleEndian.AppendUint32(p, uint32(from.Pos))
	flags := uint16(0)
	if c.id.Flavor == MariaDB {
		flags |= sendAnnotateRows
	}
	p = binary.LittleEndian.AppendUint16(p, flags)
	p = binary.LittleEndian.AppendUint32(p, c.cfg.ServerID)
	p = append(p, from.File...)
	c.c.ResetSequence()
	if err := c.c.WritePacket(p); err != nil {
		return &SourceError{Op: "request binlog dump", Err: err}
	}
	return nil
}

func (c *Conn) writeDumpMySQLGTID(set GTIDSet) error {
	data := set.mysql.Encode()
	p := make([]byte, 4, 4+1+2+4+4+8+4+len(data))
	p = append(p, gomysql.COM_BINLOG_DUMP_GTID)
	p = binary.LittleEndian.AppendUint16(p, 0x04) // BINLOG_THROUGH_GTID
	p = binary.LittleEndian.AppendUint32(p, c.cfg.ServerID)
	p = binary.LittleEndian.AppendUint32(p, 0) // no file name
	p = binary.LittleEndian.AppendUint64(p, 4)
	p = binary.LittleEndian.AppendUint32(p, uint32(len(data)))
	p = append(p, data...)
	c.c.ResetSequence()
	if err := c.c.WritePacket(p); err != nil {
		return &SourceError{Op: "request binlog dump", Err: err}
	}
	return nil
}

// semi-sync packet header bytes
const (
	semiSyncIndicator = 0xef
	semiSyncAckWanted = 0x01
)

// ReadEvent returns the next event of the dump (valid until the next call)
// and whether the master waits for an acknowledgement of it.
func (c *Conn) ReadEvent(buf []byte) (ev []byte, ackWanted bool, err error) {
	data, err := c.c.ReadPacketReuseMem(buf[:0])
	if err != nil {
		return nil, false, &SourceError{Op: "read binlog stream", Err: err}
	}
	if len(data) == 0 {
		return nil, false, &SourceError{Op: "read binlog stream", Err: errors.New("empty packet")}
	}
	switch data[0] {
	case gomysql.OK_HEADER:
	case gomysql.ERR_HEADER:
		return nil, false, &SourceError{Op: "read binlog stream", Err: c.c.HandleErrorPacket(data)}
	case gomysql.EOF_HEADER:
		return nil, false, &SourceError{Op: "read binlog stream", Err: errors.New("master ended the dump (EOF)")}
	default:
		return nil, false, &SourceError{Op: "read binlog stream", Err: fmt.Errorf("unexpected packet header 0x%02x", data[0])}
	}
	data = data[1:]
	if c.cfg.SemiSync && len(data) >= 2 && data[0] == semiSyncIndicator {
		ackWanted = data[1] == semiSyncAckWanted
		data = data[2:]
		if ackWanted {
			// The master resets its packet numbering after an event that
			// wants an ACK (the ACK itself goes out with sequence 0).
			c.c.Sequence = 1
		}
	}
	return data, ackWanted, nil
}

// AckWriter returns a writer straight onto the socket, for semi-sync ACK
// packets written with their own header (sequence 0) from the writer
// goroutine. Each write has a deadline of the read timeout (or 5 s): a master
// that stops reading cannot block the writer forever.
func (c *Conn) AckWriter() io.Writer {
	d := c.cfg.ReadTimeout
	if d <= 0 {
		d = 5 * time.Second
	}
	return deadlineWriter{c: c.c.Conn.Conn, d: d}
}

// deadlineWriter writes to c with a write deadline of d from now.
type deadlineWriter struct {
	c net.Conn
	d time.Duration
}

func (w deadlineWriter) Write(p []byte) (int, error) {
	if err := w.c.SetWriteDeadline(time.Now().Add(w.d)); err != nil {
		return 0, err
	}
	return w.c.Write(p)
}

// ConnectionID returns the master's id of this connection.
func (c *Conn) ConnectionID() uint32 { return c.c.GetConnectionID() }

// Close ends the connection. A connection that is not dumping says goodbye
// with COM_QUIT; a dumping one is just closed.
func (c *Conn) Close() error {
	return c.c.Close()
}

// Interrupt closes the socket under a ReadEvent running in another
// goroutine, which then returns an error. Unlike Close it leaves the
// packet state (the sequence number the reader writes) alone, so it does not
// race with that reader; Close the connection once the reader has returned.
func (c *Conn) Interrupt() error {
	if c.c == nil || c.c.Conn == nil || c.c.Conn.Conn == nil {
		return nil
	}
	return c.c.Conn.Conn.Close()
}

// Quit ends an idle (non-dumping) connection politely.
func (c *Conn) Quit() error { return c.c.Quit() }
