package relay

import (
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/go-mysql-org/go-mysql/replication"

	"github.com/hotstandby/hotstandby/binlog"
)

// SegmentInfo is one line of `hotstandby relay list`.
type SegmentInfo struct {
	Seq        uint64 `json:"seq"`
	Path       string `json:"path"`
	Bytes      int64  `json:"bytes"`
	MasterFile string `json:"master_file"`
	FirstPos   uint64 `json:"first_pos"`
	LastPos    uint64 `json:"last_pos"` // end of the last whole event
	// LastTxnEnd is the end of the segment's last whole transaction (0: none).
	LastTxnEnd uint64 `json:"last_transaction_end,omitempty"`
	FirstGTID  string `json:"first_gtid,omitempty"`
	LastGTID   string `json:"last_gtid,omitempty"`
	// Applied: "yes" (every transaction), "partly", "no", or "unknown".
	Applied string `json:"applied"`

	domains map[uint32]seqRange // MariaDB GTIDs held, per replication domain
}

// seqRange is the lowest and highest sequence number of one domain's
// GTIDs in a segment.
type seqRange struct{ first, last uint64 }

// List describes the segments of the relay log in dir. applied is the
// applied frontier, nil when unknown (or without a standby). A frontier
// with a relay segment (direct mode) is compared by relay position; one
// with only a GTID set (replica mode: the standby's gtid_slave_pos) by the
// GTIDs each segment holds: applied when the set holds every one of them,
// partly when some, no when none. A MariaDB GTID set holds the last
// sequence number per domain, so a GTID is in it when its domain's
// sequence number there is at least the GTID's (gtid_strict_mode keeps
// sequence numbers increasing within a domain). Without either, or with a
// set of another flavor, it is "unknown". List only reads, so it works
// whether the daemon runs or not.
func List(dir string, applied *Frontier) ([]SegmentInfo, error) {
	var out []SegmentInfo
	tr := binlog.NewTxnTracker(binlog.NewGTIDSet(binlog.MariaDB))
	err := Scan(dir, func(e Event) error {
		wasIn := tr.InTransaction() || e.Header.Type == binlog.MariaGTIDEvent
		if len(out) == 0 || out[len(out)-1].Seq != e.Segment.Seq {
			out = append(out, SegmentInfo{Seq: e.Segment.Seq, Path: e.Segment.Path, Bytes: e.Segment.Size, MasterFile: e.Segment.MasterFile, FirstPos: e.Header.Start()})
		}
		s := &out[len(out)-1]
		s.LastPos = uint64(e.Header.LogPos)
		if end, _ := tr.Feed(e.Raw, e.Checksummed); end && wasIn && e.Header.Type != binlog.MariaGTIDEvent {
			s.LastTxnEnd = uint64(e.Header.LogPos)
		}
		if e.Header.Type == binlog.MariaGTIDEvent {
			g, _, _, _ := binlog.MariaGTID(e.Raw, e.Header)
			if s.FirstGTID == "" {
				s.FirstGTID = g.String()
			}
			s.LastGTID = g.String()
			r, ok := s.domains[g.Domain]
			if !ok {
				if s.domains == nil {
					s.domains = map[uint32]seqRange{}
				}
				r.first = g.Seq
			}
			r.first, r.last = min(r.first, g.Seq), max(r.last, g.Seq)
			s.domains[g.Domain] = r
		}
		return nil
	})
	for i := range out {
		switch {
		case applied == nil:
			out[i].Applied = "unknown"
		case applied.Segment == 0:
			out[i].Applied = appliedByGTID(out[i].domains, applied.Pos.GTID)
		case out[i].Seq < applied.Segment || (out[i].Seq == applied.Segment && out[i].LastTxnEnd <= applied.Pos.Pos):
			out[i].Applied = "yes"
		case out[i].Seq == applied.Segment:
			out[i].Applied = "partly"
		default:
			out[i].Applied = "no"
		}
	}
	return out, err
}

// appliedByGTID says whether a segment holding the GTIDs of domains is
// applied when the standby's applied GTID set is set: "yes", "partly",
// "no", or "unknown" for a set that is not MariaDB's.
func appliedByGTID(domains map[uint32]seqRange, set binlog.GTIDSet) string {
	if set.Flavor() != binlog.MariaDB && !set.IsZero() {
		return "unknown"
	}
	have := map[uint32]uint64{}
	for _, g := range set.MariaDBGTIDs() {
		have[g.Domain] = g.Seq
	}
	all, some := true, false
	for d, r := range domains {
		seq, ok := have[d]
		if !ok || seq < r.last {
			all = false
		}
		if ok && seq >= r.first {
			some = true
		}
	}
	switch {
	case all:
		return "yes"
	case some:
		return "partly"
	}
	return "no"
}

// ShowOptions select what `hotstandby relay show` prints.
type ShowOptions struct {
	GTID    string         // one transaction
	From    binlog.FilePos // transactions starting at or after this position
	Limit   int            // at most this many transactions (From)
	Verbose bool           // decode rows, like mariadb-binlog -v
}

// Show prints transactions of the relay log: GTID, position, time,
// events and tables touched, and with Verbose the rows.
func Show(dir string, opt ShowOptions, w io.Writer) error {
	parser := replication.NewBinlogParser()
	parser.SetVerifyChecksum(false) // verified when stored and when read
	var fde []byte
	shown, inTxn, found := 0, false, false
	err := Scan(dir, func(e Event) error {
		if fde == nil || string(fde) != string(e.FDE) {
			fde = append([]byte(nil), e.FDE...)
			if _, err := parser.Parse(fde); err != nil {
				return fmt.Errorf("relay show: format description of %s: %w", e.Segment.Path, err)
			}
		}
		h := e.Header
		if h.Type == binlog.MariaGTIDEvent {
			g, _, _, _ := binlog.MariaGTID(e.Raw, h)
			inTxn = false
			switch {
			case opt.GTID != "":
				inTxn = g.String() == opt.GTID
			case !opt.From.IsZero():
				if c, err := (binlog.FilePos{File: e.File, Pos: h.Start()}).Compare(opt.From); err == nil && c >= 0 {
					inTxn = shown < opt.Limit
				}
			}
			if inTxn {
				found = true
				shown++
				fmt.Fprintf(w, "GTID %s at %s:%d  %s  (relay segment %d offset %d)\n", g, e.File, h.Start(),
					time.Unix(int64(h.Timestamp), 0).UTC().Format(time.RFC3339), e.Segment.Seq, e.Offset)
			}
			return nil
		}
		if !inTxn {
			if opt.GTID != "" && found {
				return ErrStopScan
			}
			return nil
		}
		// go-mysql keeps slices of the event (a table map's column types):
		// give it a copy, the reader reuses its buffer.
		ev, err := parser.Parse(append([]byte(nil), e.Raw...))
		if err != nil {
			return fmt.Errorf("relay show: event at %s:%d: %w", e.File, h.Start(), err)
		}
		fmt.Fprintf(w, "  %s:%d  %s", e.File, h.Start(), ev.Header.EventType)
		switch x := ev.Event.(type) {
		case *replication.TableMapEvent:
			fmt.Fprintf(w, "  %s.%s", x.Schema, x.Table)
		case *replication.QueryEvent:
			fmt.Fprintf(w, "  %s", strings.Join(strings.Fields(string(x.Query)), " "))
		case *replication.RowsEvent:
			fmt.Fprintf(w, "  %s.%s, %d row images", x.Table.Schema, x.Table.Table, len(x.Rows))
			if opt.Verbose {
				for _, row := range x.Rows {
					fmt.Fprintf(w, "\n    ###")
					for i, v := range row {
						fmt.Fprintf(w, " @%d=%v", i+1, printable(v))
					}
				}
			}
		}
		fmt.Fprintln(w)
		return nil
	})
	if err != nil {
		return err
	}
	if !found {
		return fmt.Errorf("relay show: no transaction %s in the relay log %s", describeSelection(opt), dir)
	}
	return nil
}

func describeSelection(opt ShowOptions) string {
	if opt.GTID != "" {
		return "with GTID " + opt.GTID
	}
	return "from " + opt.From.String()
}

func printable(v any) string {
	switch x := v.(type) {
	case nil:
		return "NULL"
	case []byte:
		return fmt.Sprintf("%q", x)
	case string:
		return fmt.Sprintf("%q", x)
	}
	return fmt.Sprint(v)
}
