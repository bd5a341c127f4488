package verify

import (
	"fmt"
	"io"
	"strings"
)

// TableResult is the comparison of one table.
type TableResult struct {
	Schema, Table string
	// MasterRows and StandbyRows count the table's rows on each side; zero
	// on the side that lacks the table.
	MasterRows, StandbyRows int64
	// Equal is true when the table exists on both sides with the same
	// columns and the same stored data.
	Equal bool
	// Diffs describes each difference, for example "missing on standby",
	// "columns differ: ..." or "chunk id in [1000,2000): digests differ
	// (master 1000 rows, standby 999 rows)". Empty when Equal.
	Diffs []string
}

// Name returns "schema.table".
func (t TableResult) Name() string { return t.Schema + "." + t.Table }

// Report is the result of Compare.
type Report struct {
	// MasterGTID and StandbyGTID are the GTID positions the comparison saw:
	// with Options.Consistent those of the two snapshots (equal by
	// construction), otherwise each server's gtid_binlog_pos when Compare
	// started.
	MasterGTID, StandbyGTID string
	// Tables holds one result per table found on either side, ordered by
	// schema and table name.
	Tables []TableResult
	// Equal is true when every table is equal.
	Equal bool
}

// Differing returns the number of tables that differ.
func (r Report) Differing() int {
	n := 0
	for _, t := range r.Tables {
		if !t.Equal {
			n++
		}
	}
	return n
}

// WriteText writes one line per table, "= db.t 1234 rows" or
// "≠ db.t: <diff>; <diff>", then a summary line.
func (r Report) WriteText(w io.Writer) {
	for _, t := range r.Tables {
		if t.Equal {
			fmt.Fprintf(w, "= %s %d rows\n", t.Name(), t.MasterRows)
			continue
		}
		fmt.Fprintf(w, "≠ %s: %s\n", t.Name(), strings.Join(t.Diffs, "; "))
	}
	var summary string
	if n := r.Differing(); n > 0 {
		summary = fmt.Sprintf("%d of %d tables differ", n, len(r.Tables))
	} else {
		summary = fmt.Sprintf("all %d tables equal", len(r.Tables))
	}
	fmt.Fprintf(w, "%s (master at %s, standby at %s)\n", summary, gtidText(r.MasterGTID), gtidText(r.StandbyGTID))
}

// gtidText shows an empty position as such.
func gtidText(pos string) string {
	if pos == "" {
		return "empty GTID position"
	}
	return pos
}
