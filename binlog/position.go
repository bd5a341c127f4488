package binlog

import (
	"fmt"
	"sort"
	"strconv"
	"strings"

	gomysql "github.com/go-mysql-org/go-mysql/mysql"
	"github.com/google/uuid"
)

// Flavor names the replication dialect of a master. Positions of different
// flavors are never compared.
type Flavor string

// The flavors the agent speaks.
const (
	MariaDB Flavor = "mariadb"
	MySQL   Flavor = "mysql"
)

// ParseFlavor checks a flavor name.
func ParseFlavor(s string) (Flavor, error) {
	switch Flavor(s) {
	case MariaDB, MySQL:
		return Flavor(s), nil
	}
	return "", fmt.Errorf("binlog: unknown flavor %q (want mariadb or mysql)", s)
}

// FilePos is a position in the master's binary log: a file name and a byte
// offset in it, as in SHOW MASTER STATUS (File, Position) or SHOW SLAVE STATUS
// (Relay_Master_Log_File, Exec_Master_Log_Pos). The zero value means unknown.
type FilePos struct {
	File string
	Pos  uint64
}

// IsZero reports whether p is the unknown position.
func (p FilePos) IsZero() bool { return p.File == "" }

// String formats p as "file:pos".
func (p FilePos) String() string {
	if p.IsZero() {
		return ""
	}
	return p.File + ":" + strconv.FormatUint(p.Pos, 10)
}

// Compare orders two positions: by the numeric suffix of the file name, then
// by offset. File names are never compared as strings (mysql-bin.000010 comes
// after mysql-bin.000009). Two files with different base names cannot be
// ordered and give an error.
func (p FilePos) Compare(q FilePos) (int, error) {
	pb, pn, err := splitFileName(p.File)
	if err != nil {
		return 0, err
	}
	qb, qn, err := splitFileName(q.File)
	if err != nil {
		return 0, err
	}
	if pb != qb {
		return 0, fmt.Errorf("binlog: cannot order positions in %q and %q: different base names", p.File, q.File)
	}
	switch {
	case pn < qn:
		return -1, nil
	case pn > qn:
		return 1, nil
	case p.Pos < q.Pos:
		return -1, nil
	case p.Pos > q.Pos:
		return 1, nil
	}
	return 0, nil
}

// AtLeast reports whether p is at or after q. An unknown q is always reached.
func (p FilePos) AtLeast(q FilePos) (bool, error) {
	if q.IsZero() {
		return true, nil
	}
	if p.IsZero() {
		return false, nil
	}
	c, err := p.Compare(q)
	if err != nil {
		return false, err
	}
	return c >= 0, nil
}

// splitFileName splits "mysql-bin.000042" into "mysql-bin" and 42.
func splitFileName(name string) (string, uint64, error) {
	i := strings.LastIndexByte(name, '.')
	if i <= 0 || i == len(name)-1 {
		return "", 0, fmt.Errorf("binlog: file name %q has no numeric suffix", name)
	}
	n, err := strconv.ParseUint(name[i+1:], 10, 64)
	if err != nil {
		return "", 0, fmt.Errorf("binlog: file name %q has no numeric suffix", name)
	}
	return name[:i], n, nil
}

// ParseFilePos parses "file:pos".
func ParseFilePos(s string) (FilePos, error) {
	i := strings.LastIndexByte(s, ':')
	if i <= 0 {
		return FilePos{}, fmt.Errorf("binlog: position %q is not file:pos", s)
	}
	pos, err := strconv.ParseUint(s[i+1:], 10, 64)
	if err != nil {
		return FilePos{}, fmt.Errorf("binlog: position %q: offset is not a number", s)
	}
	p := FilePos{File: s[:i], Pos: pos}
	if _, _, err := splitFileName(p.File); err != nil {
		return FilePos{}, err
	}
	return p, nil
}

// GTID is one MariaDB global transaction id, domain-server-seq, as written in
// the master's GTID event.
type GTID struct {
	Domain uint32
	Server uint32
	Seq    uint64
}

// String formats g as "domain-server-seq".
func (g GTID) String() string {
	return fmt.Sprintf("%d-%d-%d", g.Domain, g.Server, g.Seq)
}

// ParseGTID parses "domain-server-seq".
func ParseGTID(s string) (GTID, error) {
	parts := strings.Split(strings.TrimSpace(s), "-")
	if len(parts) != 3 {
		return GTID{}, fmt.Errorf("binlog: GTID %q is not domain-server-seq", s)
	}
	d, err1 := strconv.ParseUint(parts[0], 10, 32)
	sv, err2 := strconv.ParseUint(parts[1], 10, 32)
	seq, err3 := strconv.ParseUint(parts[2], 10, 64)
	if err1 != nil || err2 != nil || err3 != nil {
		return GTID{}, fmt.Errorf("binlog: GTID %q is not domain-server-seq", s)
	}
	return GTID{Domain: uint32(d), Server: uint32(sv), Seq: seq}, nil
}

// GTIDSet is the set of transactions a server has, in its flavor's form.
// For MariaDB it holds the last GTID per replication domain, the form of
// gtid_binlog_pos and gtid_slave_pos; for MySQL it is a UUID:interval set, the
// form of gtid_executed. A GTIDSet is immutable: Add returns a new set.
// The zero value is an empty set of no flavor.
type GTIDSet struct {
	flavor  Flavor
	mariadb map[uint32]GTID       // MariaDB: domain -> last GTID
	mysql   *gomysql.MysqlGTIDSet // MySQL
}

// NewGTIDSet returns an empty set of the given flavor.
func NewGTIDSet(f Flavor) GTIDSet {
	return GTIDSet{flavor: f}
}

// ParseGTIDSet parses a set in the flavor's textual form ("0-1-42,1-2-7" for
// MariaDB, "uuid:1-5" for MySQL). The empty string is the empty set.
func ParseGTIDSet(f Flavor, s string) (GTIDSet, error) {
	s = strings.TrimSpace(s)
	set := GTIDSet{flavor: f}
	switch f {
	case MariaDB:
		if s == "" {
			return set, nil
		}
		set.mariadb = map[uint32]GTID{}
		for _, part := range strings.Split(s, ",") {
			g, err := ParseGTID(part)
			if err != nil {
				return GTIDSet{}, err
			}
			if _, dup := set.mariadb[g.Domain]; dup {
				return GTIDSet{}, fmt.Errorf("binlog: GTID set %q names domain %d twice", s, g.Domain)
			}
			set.mariadb[g.Domain] = g
		}
		return set, nil
	case MySQL:
		if s == "" {
			return set, nil
		}
		gs, err := gomysql.ParseMysqlGTIDSet(s)
		if err != nil {
			return GTIDSet{}, fmt.Errorf("binlog: GTID set %q: %w", s, err)
		}
		set.mysql = gs.(*gomysql.MysqlGTIDSet)
		return set, nil
	}
	return GTIDSet{}, fmt.Errorf("binlog: GTID set %q: unknown flavor %q", s, f)
}

// Flavor returns the set's flavor.
func (s GTIDSet) Flavor() Flavor { return s.flavor }

// IsZero reports whether the set is empty.
func (s GTIDSet) IsZero() bool {
	return len(s.mariadb) == 0 && (s.mysql == nil || s.mysql.IsEmpty())
}

// String formats the set in the flavor's textual form, domains in order.
func (s GTIDSet) String() string {
	switch {
	case len(s.mariadb) > 0:
		doms := make([]uint32, 0, len(s.mariadb))
		for d := range s.mariadb {
			doms = append(doms, d)
		}
		sort.Slice(doms, func(i, j int) bool { return doms[i] < doms[j] })
		parts := make([]string, len(doms))
		for i, d := range doms {
			parts[i] = s.mariadb[d].String()
		}
		return strings.Join(parts, ",")
	case s.mysql != nil:
		return s.mysql.String()
	}
	return ""
}

// MariaDBGTIDs returns the last GTID of each domain of a MariaDB set, in
// domain order (nil for other flavors).
func (s GTIDSet) MariaDBGTIDs() []GTID {
	out := make([]GTID, 0, len(s.mariadb))
	for _, g := range s.mariadb {
		out = append(out, g)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Domain < out[j].Domain })
	return out
}

// AddMariaDB returns a copy of s that records g as the last transaction of
// its domain.
func (s GTIDSet) AddMariaDB(g GTID) GTIDSet {
	out := GTIDSet{flavor: MariaDB, mariadb: make(map[uint32]GTID, len(s.mariadb)+1)}
	for d, v := range s.mariadb {
		out.mariadb[d] = v
	}
	out.mariadb[g.Domain] = g
	return out
}

// LatestPerDomain returns the MariaDB set that holds, for each domain of
// any of sets, the GTID with the highest sequence number among them (on a
// tie, the one of the later set).
func LatestPerDomain(sets ...GTIDSet) GTIDSet {
	out := GTIDSet{flavor: MariaDB, mariadb: map[uint32]GTID{}}
	for _, set := range sets {
		for d, g := range set.mariadb {
			if have, ok := out.mariadb[d]; !ok || g.Seq >= have.Seq {
				out.mariadb[d] = g
			}
		}
	}
	return out
}

// AddMySQL returns a copy of s with one more MySQL transaction sid:gno.
func (s GTIDSet) AddMySQL(sid [16]byte, gno int64) GTIDSet {
	var gs *gomysql.MysqlGTIDSet
	if s.mysql != nil {
		gs = s.mysql.Clone().(*gomysql.MysqlGTIDSet)
	} else {
		empty := gomysql.NewMysqlGTIDSet()
		gs = &empty
	}
	gs.AddGTID(uuid.UUID(sid), gno)
	return GTIDSet{flavor: MySQL, mysql: gs}
}

// Equal reports whether two sets hold the same transactions.
func (s GTIDSet) Equal(o GTIDSet) bool {
	return s.String() == o.String()
}

// Contains reports whether every transaction of o is in s. For MariaDB this
// compares the last sequence number of each of o's domains. Sets of
// different flavors give an error.
func (s GTIDSet) Contains(o GTIDSet) (bool, error) {
	if o.IsZero() {
		return true, nil
	}
	if s.flavor != o.flavor {
		return false, fmt.Errorf("binlog: cannot compare %s GTID set with %s GTID set", s.flavor, o.flavor)
	}
	if s.flavor == MySQL {
		if s.mysql == nil {
			return false, nil
		}
		return s.mysql.Contain(o.mysql), nil
	}
	for d, g := range o.mariadb {
		have, ok := s.mariadb[d]
		if !ok || have.Seq < g.Seq {
			return false, nil
		}
	}
	return true, nil
}

// SeqBehind counts the MariaDB transactions in ahead that s has not reached:
// for each of ahead's domains, its last sequence number minus s's. It is
// false for other flavors, where sets do not count that way.
func (s GTIDSet) SeqBehind(ahead GTIDSet) (int64, bool) {
	if ahead.flavor != MariaDB || (s.flavor != MariaDB && !s.IsZero()) {
		return 0, false
	}
	var n int64
	for d, g := range ahead.mariadb {
		if have := s.mariadb[d].Seq; g.Seq > have {
			n += int64(g.Seq - have)
		}
	}
	return n, true
}

// Position is a resume point on the master: a file position and, where the
// master has them, the GTIDs up to it. It is what the agent stores for each
// of its frontiers (received, acked, applied).
type Position struct {
	FilePos
	GTID GTIDSet
}

// Encode stores a Position self-describing, in the form
// "file:NAME:POS|gtid:FLAVOR:SET".
func (p Position) Encode() string {
	return "file:" + p.FilePos.String() + "|gtid:" + string(p.GTID.flavor) + ":" + p.GTID.String()
}

// DecodePosition reverses Encode.
func DecodePosition(s string) (Position, error) {
	fileText, gtidText, ok := strings.Cut(s, "|gtid:")
	if !ok || !strings.HasPrefix(fileText, "file:") {
		return Position{}, fmt.Errorf("binlog: stored position %q is not in the form file:NAME:POS|gtid:FLAVOR:SET", s)
	}
	var p Position
	if fp := strings.TrimPrefix(fileText, "file:"); fp != "" {
		var err error
		if p.FilePos, err = ParseFilePos(fp); err != nil {
			return Position{}, err
		}
	}
	flavor, set, _ := strings.Cut(gtidText, ":")
	if flavor == "" {
		return p, nil
	}
	f, err := ParseFlavor(flavor)
	if err != nil {
		return Position{}, err
	}
	if p.GTID, err = ParseGTIDSet(f, set); err != nil {
		return Position{}, err
	}
	return p, nil
}

// String formats p for people: "mysql-bin.000004:1234 (gtid 0-1-42)".
func (p Position) String() string {
	if p.FilePos.IsZero() && p.GTID.IsZero() {
		return "(none)"
	}
	s := p.FilePos.String()
	if !p.GTID.IsZero() {
		s += " (gtid " + p.GTID.String() + ")"
	}
	return s
}

// StartKind says how a first run chooses where to start streaming.
type StartKind int

// The ways to start.
const (
	// StartCurrent starts at the master's current position (SHOW MASTER STATUS).
	StartCurrent StartKind = iota
	// StartGTID starts after a GTID set (the transactions already present).
	StartGTID
	// StartFile starts at a file position.
	StartFile
)

// Start is the configured starting point of a first run: "current",
// "gtid:0-1-42" or "file:mysql-bin.000004:189".
type Start struct {
	Kind StartKind
	GTID string // StartGTID: the set, in the master's flavor's form
	File FilePos
}

// ParseStart parses the `start` setting.
func ParseStart(s string) (Start, error) {
	switch {
	case s == "" || s == "current":
		return Start{Kind: StartCurrent}, nil
	case strings.HasPrefix(s, "gtid:"):
		set := strings.TrimPrefix(s, "gtid:")
		if set == "" {
			return Start{}, fmt.Errorf("binlog: start %q: empty GTID set", s)
		}
		return Start{Kind: StartGTID, GTID: set}, nil
	case strings.HasPrefix(s, "file:"):
		fp, err := ParseFilePos(strings.TrimPrefix(s, "file:"))
		if err != nil {
			return Start{}, fmt.Errorf("binlog: start %q: %w", s, err)
		}
		if fp.Pos < 4 {
			return Start{}, fmt.Errorf("binlog: start %q: offset must be at least 4", s)
		}
		return Start{Kind: StartFile, File: fp}, nil
	}
	return Start{}, fmt.Errorf("binlog: start %q: want current, gtid:SET or file:NAME:POS", s)
}

// String formats s as it is written in the config file.
func (s Start) String() string {
	switch s.Kind {
	case StartGTID:
		return "gtid:" + s.GTID
	case StartFile:
		return "file:" + s.File.String()
	}
	return "current"
}
