package verify

import (
	"context"
	"database/sql"
	"fmt"
)

// maxChunkDiffs is how many differing chunks a table's result lists; the
// rest are counted.
const maxChunkDiffs = 10

// Compare compares every table of master and standby and returns a report of
// the differences. A difference is not an error: Compare returns an error
// only when it cannot compare, such as a failed query (wrapped as
// "verify: table db.t: ..."), invalid options, ErrRowTooLarge or, with
// Options.Consistent, ErrNotAtSamePosition.
func Compare(ctx context.Context, master, standby *sql.DB, opt Options) (Report, error) {
	if err := opt.Validate(); err != nil {
		return Report{}, err
	}
	m, err := openSide(ctx, "master", master)
	if err != nil {
		return Report{}, err
	}
	defer m.close()
	s, err := openSide(ctx, "standby", standby)
	if err != nil {
		return Report{}, err
	}
	defer s.close()

	var rep Report
	if opt.Consistent {
		if rep.MasterGTID, err = syncSnapshots(ctx, m, s, opt.Timeout, opt.StopStandbyAt); err != nil {
			return Report{}, err
		}
		rep.StandbyGTID = rep.MasterGTID
	} else {
		err = both(
			func() (err error) { rep.MasterGTID, err = m.gtidBinlogPos(ctx); return err },
			func() (err error) { rep.StandbyGTID, err = s.gtidBinlogPos(ctx); return err })
		if err != nil {
			return Report{}, err
		}
	}

	var mcat, scat catalog
	err = both(
		func() (err error) { mcat, err = loadCatalog(ctx, m.conn, opt.excluded()); return wrapSide(m, err) },
		func() (err error) { scat, err = loadCatalog(ctx, s.conn, opt.excluded()); return wrapSide(s, err) })
	if err != nil {
		return Report{}, fmt.Errorf("verify: %w", err)
	}
	rep.Equal = true
	for _, k := range allKeys(mcat, scat) {
		res, err := compareTable(ctx, m, s, mcat[k], scat[k], opt.chunkRows())
		if err != nil {
			return Report{}, fmt.Errorf("verify: table %s: %w", k, err)
		}
		res.Equal = len(res.Diffs) == 0
		rep.Equal = rep.Equal && res.Equal
		rep.Tables = append(rep.Tables, res)
	}
	if err := both(func() error { return m.endSnapshot(ctx) }, func() error { return s.endSnapshot(ctx) }); err != nil {
		return Report{}, err
	}
	return rep, nil
}

// wrapSide prefixes err, if any, with the side's name.
func wrapSide(s *side, err error) error {
	if err != nil {
		return fmt.Errorf("%s: %w", s.name, err)
	}
	return nil
}

// compareTable compares one table; mt or st is nil if the table is missing
// on that side.
func compareTable(ctx context.Context, m, s *side, mt, st *table, chunkRows int) (TableResult, error) {
	var res TableResult
	if mt != nil {
		res.Schema, res.Table = mt.key.schema, mt.key.table
	} else {
		res.Schema, res.Table = st.key.schema, st.key.table
	}
	if mt == nil || st == nil {
		var err error
		if mt == nil {
			res.Diffs = []string{"missing on master"}
			res.StandbyRows, err = countRows(ctx, s.conn, st)
		} else {
			res.Diffs = []string{"missing on standby"}
			res.MasterRows, err = countRows(ctx, m.conn, mt)
		}
		return res, err
	}
	if diff := columnsDiff(mt.columns, st.columns); diff != "" {
		res.Diffs = []string{diff}
		err := both(
			func() (err error) { res.MasterRows, err = countRows(ctx, m.conn, mt); return wrapSide(m, err) },
			func() (err error) { res.StandbyRows, err = countRows(ctx, s.conn, st); return wrapSide(s, err) })
		return res, err
	}
	col, ok := mt.chunkColumn()
	if !ok {
		md, sd, err := digestBoth(ctx, m, s, mt, "")
		res.MasterRows, res.StandbyRows = md.rows, sd.rows
		if err == nil && md != sd {
			res.Diffs = []string{digestDiff(chunk{}, column{}, md, sd)}
		}
		return res, err
	}
	return compareChunks(ctx, m, s, mt, col, chunkRows)
}

// compareChunks compares a table chunk by chunk of column col, with chunk
// boundaries taken from the master.
func compareChunks(ctx context.Context, m, s *side, t *table, col column, chunkRows int) (TableResult, error) {
	res := TableResult{Schema: t.key.schema, Table: t.key.table}
	chs, err := chunks(ctx, m.conn, t, col, chunkRows)
	if err != nil {
		return res, wrapSide(m, fmt.Errorf("chunk boundaries: %w", err))
	}
	differing := 0
	for _, ch := range chs {
		md, sd, err := digestBoth(ctx, m, s, t, ch.where(col.name))
		if err != nil {
			return res, err
		}
		res.MasterRows += md.rows
		res.StandbyRows += sd.rows
		if md == sd {
			continue
		}
		if differing++; differing <= maxChunkDiffs {
			res.Diffs = append(res.Diffs, digestDiff(ch, col, md, sd))
		}
	}
	if differing > maxChunkDiffs {
		res.Diffs = append(res.Diffs, fmt.Sprintf("%d more chunks differ", differing-maxChunkDiffs))
	}
	return res, nil
}

// digestDiff describes differing digests of chunk ch of column col.
func digestDiff(ch chunk, col column, md, sd digest) string {
	d := fmt.Sprintf("digests differ (master %d rows, standby %d rows)", md.rows, sd.rows)
	if ch == (chunk{}) {
		return d
	}
	return "chunk " + ch.label(col.name) + ": " + d
}

// digestBoth digests the same rows on both sides at once.
func digestBoth(ctx context.Context, m, s *side, t *table, where string) (md, sd digest, err error) {
	err = both(
		func() (err error) { md, err = digestRows(ctx, m.conn, t, where); return wrapSide(m, err) },
		func() (err error) { sd, err = digestRows(ctx, s.conn, t, where); return wrapSide(s, err) })
	return md, sd, err
}
