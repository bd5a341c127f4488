package failover

import (
	"errors"
	"fmt"
	"sort"
	"strings"

	"github.com/hotstandby/hotstandby/binlog"
	"github.com/hotstandby/hotstandby/checkpoint"
)

// ErrRejoinRefused means a rejoin was not started, or stopped before the
// old master replicated anything from the new one: a precondition failed.
// Nothing on either server was changed, except that the old master may
// have been fenced (read_only=ON, its client connections killed) and,
// when a write slipped past the fence, its replication configuration
// reset again.
var ErrRejoinRefused = errors.New("rejoin refused")

// ParseGTIDState parses a MariaDB @@gtid_binlog_state (or gtid_binlog_pos):
// "domain-server-seq" entries separated by commas, one per (domain, server)
// pair. The empty string is the empty state.
func ParseGTIDState(s string) ([]binlog.GTID, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return nil, nil
	}
	var out []binlog.GTID
	for _, part := range strings.Split(s, ",") {
		g, err := binlog.ParseGTID(part)
		if err != nil {
			return nil, err
		}
		out = append(out, g)
	}
	return out, nil
}

// ErrantRange is the part of one (domain, server) history that one server
// has and another lacks: that server's transactions with sequence numbers
// in (After, Last]. GTIDs lists them exactly when they were read from the
// binlog; sequence numbers in the range that belong to other servers are
// not in it.
type ErrantRange struct {
	Domain, Server uint32
	After          uint64 // the other server's last seq_no of this pair (0: none)
	Last           uint64 // this server's last seq_no of the pair
	GTIDs          []binlog.GTID
}

// String formats the range: "0-1-101..0-1-105" or the single GTID.
func (r ErrantRange) String() string {
	first := binlog.GTID{Domain: r.Domain, Server: r.Server, Seq: r.After + 1}
	if len(r.GTIDs) > 0 {
		first = r.GTIDs[0]
	}
	last := binlog.GTID{Domain: r.Domain, Server: r.Server, Seq: r.Last}
	if first == last {
		return last.String()
	}
	return first.String() + ".." + last.String()
}

// Count is how many transactions the range holds (exact when GTIDs is
// known, otherwise an upper bound).
func (r ErrantRange) Count() int {
	if len(r.GTIDs) > 0 {
		return len(r.GTIDs)
	}
	return int(r.Last - r.After)
}

// ErrantRanges returns what the state has that other lacks, comparing
// gtid_binlog_state entries: for each (domain, server) pair, the
// transactions past other's last seq_no of the same pair. Sorted by domain,
// then server.
func ErrantRanges(state, other []binlog.GTID) []ErrantRange {
	type key struct{ d, s uint32 }
	have := map[key]uint64{}
	for _, g := range other {
		have[key{g.Domain, g.Server}] = max(have[key{g.Domain, g.Server}], g.Seq)
	}
	var out []ErrantRange
	for _, g := range state {
		if after := have[key{g.Domain, g.Server}]; g.Seq > after {
			out = append(out, ErrantRange{Domain: g.Domain, Server: g.Server, After: after, Last: g.Seq})
		}
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].Domain != out[j].Domain {
			return out[i].Domain < out[j].Domain
		}
		return out[i].Server < out[j].Server
	})
	return out
}

// DescribeErrant lists ranges in one line: "0-1-101..0-1-105 (5), 1-1-7 (1)".
func DescribeErrant(ranges []ErrantRange) string {
	parts := make([]string, len(ranges))
	for i, r := range ranges {
		parts[i] = fmt.Sprintf("%s (%d)", r, r.Count())
	}
	return strings.Join(parts, ", ")
}

// TailFacts is what the rejoin learned about the old master's binlog, for
// TailVerdict.
type TailFacts struct {
	// LastFile is the old master's current binlog file; TailFile is the
	// file that holds every errant transaction ("" when they span files or
	// were not found).
	LastFile, TailFile string
	// TailAtEnd reports that the errant transactions are the last
	// transactions of TailFile and that TailFile does not end in a Rotate
	// event: the file ended when the server stopped or died.
	TailAtEnd bool
}

// TailVerdict says whether the errant ranges of the old master are exactly
// the unacknowledged AFTER_SYNC tail of its death: transactions it wrote to
// its binlog and was waiting to have acknowledged when it died, which no
// client was told had committed. That holds only when all of these do:
//   - the promotion was not forced: the semi-sync proof showed every
//     commit OK'd to a client was acknowledged by the agent, so what the
//     agent lacks was never OK'd;
//   - every errant transaction is the old master's own (its server_id as
//     the promotion recorded it), in a domain of the promotion's safe
//     frontier, and starts right after that frontier's seq_no (nothing the
//     agent received is missing);
//   - they all sit at the end of one binlog file that ended with the
//     server (no Rotate after them, and not the file it writes now): a
//     server opens a new binlog file when it starts, so writes since a
//     restart, or on a server that never stopped, are errant writes, not
//     the tail.
//
// It returns ok with no reason, or false with why not.
func TailVerdict(role checkpoint.Role, ranges []ErrantRange, facts TailFacts) (bool, string) {
	if len(ranges) == 0 {
		return false, "nothing errant"
	}
	if role.Forced {
		return false, "the promotion was forced (not proven lossless), so a client may have seen these commit"
	}
	target, err := targetGTIDs(role.Target)
	if err != nil {
		return false, err.Error()
	}
	for _, r := range ranges {
		if r.Server != role.OldMaster.ServerID {
			return false, fmt.Sprintf("%s was written by server_id %d, not by the old master (server_id %d) before it died", r, r.Server, role.OldMaster.ServerID)
		}
		t, ok := target[r.Domain]
		if !ok {
			return false, fmt.Sprintf("%s is in domain %d, which the promotion's safe frontier %s does not have", r, r.Domain, role.Target)
		}
		first := r.After + 1
		if len(r.GTIDs) > 0 {
			first = r.GTIDs[0].Seq
		}
		if first != t.Seq+1 {
			return false, fmt.Sprintf("%s does not follow the promotion's safe frontier %s", r, t)
		}
	}
	if facts.TailFile == "" || !facts.TailAtEnd {
		return false, "the errant transactions are not all at the end of the binlog file the old master was writing when it died"
	}
	if facts.TailFile == facts.LastFile {
		return false, "they are in the binlog file " + facts.TailFile + " the old master is writing now, written since it last started"
	}
	return true, ""
}

// targetGTIDs reads the GTIDs of a Role.Target ("FILE:POS (gtid SET)"), by
// domain.
func targetGTIDs(target string) (map[uint32]binlog.GTID, error) {
	_, set, ok := strings.Cut(target, "(gtid ")
	if !ok {
		return nil, fmt.Errorf("the promotion recorded no GTID safe frontier (%q)", target)
	}
	gs, err := ParseGTIDState(strings.TrimSuffix(strings.TrimSpace(set), ")"))
	if err != nil {
		return nil, fmt.Errorf("the promotion's safe frontier %q: %w", target, err)
	}
	out := map[uint32]binlog.GTID{}
	for _, g := range gs {
		out[g.Domain] = g
	}
	return out, nil
}

// ParseGTIDInfo reads the GTID of a SHOW BINLOG EVENTS row of type Gtid:
// its Info is "BEGIN GTID 0-1-5" or "GTID 0-1-5" (DDL), possibly followed
// by more words ("... cid=12").
func ParseGTIDInfo(info string) (binlog.GTID, bool) {
	f := strings.Fields(info)
	for i, w := range f {
		if w == "GTID" && i+1 < len(f) {
			g, err := binlog.ParseGTID(f[i+1])
			return g, err == nil
		}
	}
	return binlog.GTID{}, false
}

// ParseGTIDList reads the Info of a Gtid_list event: "[0-1-3,1-1-7]".
func ParseGTIDList(info string) ([]binlog.GTID, error) {
	return ParseGTIDState(strings.Trim(strings.TrimSpace(info), "[]"))
}

// ReplicationPrivileged reports whether SHOW GRANTS lines give REPLICATION
// SLAVE (MariaDB 10.5+ also calls it REPLICATION REPLICA) on *.*.
func ReplicationPrivileged(grants []string) bool {
	for _, g := range grants {
		u := strings.ToUpper(g)
		if !strings.Contains(u, " ON *.* ") {
			continue
		}
		if strings.Contains(u, "ALL PRIVILEGES") || strings.Contains(u, "REPLICATION SLAVE") || strings.Contains(u, "REPLICATION REPLICA") {
			return true
		}
	}
	return false
}

// SQLString quotes s as an SQL string literal (for CHANGE MASTER, which
// takes no placeholders).
func SQLString(s string) string {
	r := strings.NewReplacer(`\`, `\\`, `'`, `\'`, "\x00", `\0`, "\n", `\n`, "\r", `\r`, "\x1a", `\Z`)
	return "'" + r.Replace(s) + "'"
}

// Scrub replaces every occurrence of secret in text (an error message) with
// asterisks.
func Scrub(text, secret string) string {
	if secret == "" {
		return text
	}
	return strings.ReplaceAll(text, secret, "********")
}

// OwnHole returns the transactions of serverID (the old master's own
// server_id) that the new master's gtid_binlog_state has past the old
// master's: what a crash recovery with --init-rpl-role=SLAVE truncated from
// the old master's binlog although the standby had acknowledged it. A
// MariaDB replica's IO thread drops every event that carries its own
// server_id (unless --replicate-same-server-id, which needs a restart and
// is refused with log_slave_updates), and its gtid_slave_pos moves past
// them, so native replication alone never brings them back.
func OwnHole(newState, oldState []binlog.GTID, serverID uint32) []ErrantRange {
	var out []ErrantRange
	for _, r := range ErrantRanges(newState, oldState) {
		if r.Server == serverID {
			out = append(out, r)
		}
	}
	return out
}

// HoleFilled reports whether oldState (a gtid_binlog_state) has every
// range of hole up to its Last: the old master has applied and binlogged
// them.
func HoleFilled(oldState []binlog.GTID, hole []ErrantRange) bool {
	type key struct{ d, s uint32 }
	have := map[key]uint64{}
	for _, g := range oldState {
		have[key{g.Domain, g.Server}] = max(have[key{g.Domain, g.Server}], g.Seq)
	}
	for _, r := range hole {
		if have[key{r.Domain, r.Server}] < r.Last {
			return false
		}
	}
	return true
}

// tempServerIDCandidates is how many server_ids TempServerIDs offers.
const tempServerIDCandidates = 16

// TempServerIDs lists, in order, the server_ids a rejoin may lend the old
// master (own is its real one) while it replicates its own lost
// transactions. The list depends on own only, so a later rejoin recognises
// the id a rejoin that died left behind (IsTempServerID).
func TempServerIDs(own uint32) []uint32 {
	out := make([]uint32, 0, tempServerIDCandidates)
	for i := uint32(0); len(out) < tempServerIDCandidates; i++ {
		id := own ^ (0x48530000 + i) // "HS"
		if id != 0 && id != own {
			out = append(out, id)
		}
	}
	return out
}

// IsTempServerID reports whether id is one of TempServerIDs(own).
func IsTempServerID(id, own uint32) bool {
	for _, c := range TempServerIDs(own) {
		if c == id {
			return true
		}
	}
	return false
}

// PickTempServerID returns the first of TempServerIDs(own) that used does
// not hold.
func PickTempServerID(own uint32, used map[uint32]bool) (uint32, bool) {
	for _, c := range TempServerIDs(own) {
		if !used[c] {
			return c, true
		}
	}
	return 0, false
}

// FormatGTIDs formats a GTID state as MariaDB prints it ("0-1-5,1-2-7").
func FormatGTIDs(state []binlog.GTID) string {
	parts := make([]string, len(state))
	for i, g := range state {
		parts[i] = g.String()
	}
	return strings.Join(parts, ",")
}

// HoleUnreachable returns the ranges of hole that replication from the old
// master's gtid_binlog_pos (oldPos, one GTID per domain; MASTER_DEMOTE_TO_SLAVE
// makes it the start) cannot bring: the new master sends, per domain, what
// follows that GTID, and with gtid_strict_mode sequence numbers grow along
// a binlog, so a range is reached only when the old master's last GTID in
// its domain is its own, right before the range. A range behind the start
// (an earlier rejoin already moved the old master past it) is out of reach.
func HoleUnreachable(oldPos []binlog.GTID, hole []ErrantRange) []ErrantRange {
	last := map[uint32]binlog.GTID{}
	for _, g := range oldPos {
		last[g.Domain] = g
	}
	var out []ErrantRange
	for _, r := range hole {
		g, ok := last[r.Domain]
		if ok && g.Seq > r.After {
			out = append(out, r)
		}
	}
	return out
}
