package clone

import (
	"context"
	"database/sql"
	"encoding/hex"
	"errors"
	"fmt"
	"math/big"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/go-sql-driver/mysql"
)

// standbySession is set on every standby connection that writes rows:
// values arrive as the master's bytes and in UTC, nothing is binlogged
// (no GTID of the standby's own), and checks that the master already made
// are not repeated.
var standbySession = []string{
	"SET NAMES binary",
	"SET SESSION time_zone = '+00:00'",
	"SET SESSION sql_log_bin = 0",
	"SET SESSION sql_mode = 'NO_AUTO_VALUE_ON_ZERO,NO_ENGINE_SUBSTITUTION'",
	"SET SESSION foreign_key_checks = 0, unique_checks = 0, check_constraint_checks = 0",
	"SET SESSION net_write_timeout = 3600, net_read_timeout = 3600, max_statement_time = 0",
}

// valueKind is how a column's text-protocol value is written back.
type valueKind int

const (
	kindHex    valueKind = iota // X'..': the exact bytes (strings, binary, BIT, ENUM, SET, JSON, spatial)
	kindNumber                  // as sent, unquoted (integers, DECIMAL, DOUBLE, YEAR)
	kindQuoted                  // as sent, quoted (DATE, TIME, DATETIME, TIMESTAMP: digits and punctuation only)
)

func kindOf(dataType string) valueKind {
	switch dataType {
	case "tinyint", "smallint", "mediumint", "int", "bigint", "decimal", "double", "float", "year":
		return kindNumber
	case "date", "time", "datetime", "timestamp":
		return kindQuoted
	}
	return kindHex
}

// selectExpr reads a column so that its text is exact: FLOAT as its exact
// DOUBLE value (the default text has 6 digits and loses bits).
func selectExpr(c column) string {
	if c.dataType == "float" {
		return "CAST(" + quoteIdent(c.name) + " AS DOUBLE)"
	}
	return quoteIdent(c.name)
}

// tableProgress counts one table's copy.
type tableProgress struct {
	t            *table
	rows, bytes  atomic.Int64
	chunksLeft   atomic.Int32
	startedNanos atomic.Int64 // unix nanos of the first chunk's start
	doneNanos    atomic.Int64 // unix nanos of the last chunk's end
}

func (p *tableProgress) done() bool { return p.chunksLeft.Load() == 0 }

// chunk is a part of a table one worker copies: a range of the chunk
// column, or the whole table.
type chunk struct {
	p     *tableProgress
	where string // "" for the whole table
	n, of int
}

// planChunks splits big tables with an integer primary-key start into
// ranges, reading the bounds in the snapshot (on conn).
func planChunks(ctx context.Context, conn *sql.Conn, progress []*tableProgress, chunkRows int64) ([]chunk, error) {
	var out []chunk
	for _, p := range progress {
		t := p.t
		if t.chunkCol == "" || t.estRows <= chunkRows {
			p.chunksLeft.Store(1)
			out = append(out, chunk{p: p, n: 1, of: 1})
			continue
		}
		var lo, hi sql.NullString
		col := quoteIdent(t.chunkCol)
		if err := conn.QueryRowContext(ctx, "SELECT MIN("+col+"), MAX("+col+") FROM "+t.quoted()).Scan(&lo, &hi); err != nil {
			return nil, fmt.Errorf("bounds of %s: %w", t, err)
		}
		if !lo.Valid {
			p.chunksLeft.Store(1)
			out = append(out, chunk{p: p, n: 1, of: 1})
			continue
		}
		ranges := splitRange(lo.String, hi.String, (t.estRows+chunkRows-1)/chunkRows)
		p.chunksLeft.Store(int32(len(ranges)))
		for i, r := range ranges {
			out = append(out, chunk{p: p, where: " WHERE " + r.where(col), n: i + 1, of: len(ranges)})
		}
	}
	return out, nil
}

// span is [lo, hi) or, for the last, [lo, hi].
type span struct {
	lo, hi string
	last   bool
}

func (s span) where(col string) string {
	if s.last {
		return col + " >= " + s.lo + " AND " + col + " <= " + s.hi
	}
	return col + " >= " + s.lo + " AND " + col + " < " + s.hi
}

// splitRange splits [lo, hi] (integers as text) into at most n spans.
func splitRange(lo, hi string, n int64) []span {
	a, ok1 := new(big.Int).SetString(lo, 10)
	b, ok2 := new(big.Int).SetString(hi, 10)
	if !ok1 || !ok2 || a.Cmp(b) >= 0 || n <= 1 {
		return []span{{lo: lo, hi: hi, last: true}}
	}
	width := new(big.Int).Sub(b, a)
	width.Add(width, big.NewInt(1))
	if width.Cmp(big.NewInt(n)) < 0 {
		n = width.Int64()
	}
	step := new(big.Int).Div(width, big.NewInt(n))
	var out []span
	cur := new(big.Int).Set(a)
	for i := int64(0); i < n; i++ {
		next := new(big.Int).Add(cur, step)
		if i == n-1 {
			out = append(out, span{lo: cur.String(), hi: b.String(), last: true})
			break
		}
		out = append(out, span{lo: cur.String(), hi: next.String()})
		cur = next
	}
	return out
}

// worker copies chunks from its snapshot connection to its standby
// connection.
type worker struct {
	id         int
	master     *sql.Conn
	standby    *sql.Conn
	batchBytes int
}

// copyChunk streams the chunk's rows into multi-row INSERTs.
func (w *worker) copyChunk(ctx context.Context, ch chunk) error {
	t := ch.p.t
	var sel, ins []string
	var kinds []valueKind
	for _, c := range t.columns {
		if c.generated {
			continue
		}
		sel = append(sel, selectExpr(c))
		ins = append(ins, quoteIdent(c.name))
		kinds = append(kinds, kindOf(c.dataType))
	}
	ch.p.startedNanos.CompareAndSwap(0, time.Now().UnixNano())
	rows, err := w.master.QueryContext(ctx, "SELECT "+strings.Join(sel, ", ")+" FROM "+t.quoted()+ch.where)
	if err != nil {
		return fmt.Errorf("read %s (chunk %d of %d) from the master: %w", t, ch.n, ch.of, err)
	}
	defer rows.Close()
	prefix := "INSERT INTO " + t.quoted() + " (" + strings.Join(ins, ", ") + ") VALUES "
	vals := make([]sql.RawBytes, len(sel))
	ptrs := make([]any, len(sel))
	for i := range vals {
		ptrs[i] = &vals[i]
	}
	var stmt, row []byte
	var inStmt, inStmtBytes int64
	flush := func() error {
		if inStmt == 0 {
			return nil
		}
		if err := execRetrying(ctx, w.standby, string(stmt)); err != nil {
			return fmt.Errorf("write %s (chunk %d of %d) to the standby: %w (the standby's error log says why; a full disk shows there as errno 28)", t, ch.n, ch.of, err)
		}
		ch.p.rows.Add(inStmt)
		ch.p.bytes.Add(inStmtBytes)
		stmt, inStmt, inStmtBytes = stmt[:0], 0, 0
		return nil
	}
	for rows.Next() {
		if err := rows.Scan(ptrs...); err != nil {
			return fmt.Errorf("read %s from the master: %w", t, err)
		}
		var n int64
		row, n = encodeRow(row[:0], vals, kinds)
		if inStmt > 0 && len(stmt)+len(row)+1 > w.batchBytes {
			if err := flush(); err != nil {
				return err
			}
		}
		if inStmt == 0 {
			stmt = append(stmt, prefix...)
		} else {
			stmt = append(stmt, ',')
		}
		stmt = append(stmt, row...)
		inStmt++
		inStmtBytes += n
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("read %s (chunk %d of %d) from the master: %w", t, ch.n, ch.of, err)
	}
	if err := flush(); err != nil {
		return err
	}
	if ch.p.chunksLeft.Add(-1) == 0 {
		if len(t.deferredKeys) > 0 {
			if _, err := w.standby.ExecContext(ctx, t.addKeysSQL()); err != nil {
				return fmt.Errorf("add the secondary indexes of %s to the standby: %w (the standby's error log says why; a full disk shows there as errno 28)", t, err)
			}
		}
		ch.p.doneNanos.Store(time.Now().UnixNano())
	}
	return nil
}

// encodeRow appends "(v1,v2,...)" to dst and returns it with the row's
// size in bytes as read.
func encodeRow(dst []byte, vals []sql.RawBytes, kinds []valueKind) ([]byte, int64) {
	var n int64
	dst = append(dst, '(')
	for i, v := range vals {
		if i > 0 {
			dst = append(dst, ',')
		}
		n += int64(len(v))
		switch {
		case v == nil:
			dst = append(dst, "NULL"...)
		case kinds[i] == kindNumber:
			dst = append(dst, v...)
		case kinds[i] == kindQuoted:
			dst = append(dst, '\'')
			dst = append(dst, v...)
			dst = append(dst, '\'')
		default:
			dst = append(dst, "X'"...)
			dst = hex.AppendEncode(dst, v)
			dst = append(dst, '\'')
		}
	}
	return append(dst, ')'), n
}

// copyAll runs the workers over the chunks; the first error stops them all.
func copyAll(ctx context.Context, workers []*worker, chunks []chunk) error {
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	queue := make(chan chunk)
	var wg sync.WaitGroup
	for _, w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for ch := range queue {
				if err := w.copyChunk(ctx, ch); err != nil {
					cancel(fmt.Errorf("worker %d: %w", w.id, err))
					return
				}
			}
		}()
	}
	func() {
		defer close(queue)
		for _, ch := range chunks {
			select {
			case queue <- ch:
			case <-ctx.Done():
				return
			}
		}
	}()
	wg.Wait()
	if err := context.Cause(ctx); err != nil && !errors.Is(err, context.Canceled) {
		return err
	}
	return ctx.Err()
}

// deadlockRetries is how often a statement that InnoDB chose as a deadlock
// victim is sent again.
const deadlockRetries = 10

// execRetrying runs one autocommit statement, again when InnoDB rolled it
// back as a deadlock victim (1213) or after a lock wait timeout (1205): the
// statement is then undone as a whole. Workers inserting the first rows
// into one empty table meet this: with unique_checks=0 and
// foreign_key_checks=0, MariaDB 10.6+ loads an empty table in bulk under
// a table lock, and two first inserts deadlock on it.
func execRetrying(ctx context.Context, c *sql.Conn, stmt string) error {
	for attempt := 0; ; attempt++ {
		_, err := c.ExecContext(ctx, stmt)
		var me *mysql.MySQLError
		if err == nil || attempt == deadlockRetries || !errors.As(err, &me) || (me.Number != 1213 && me.Number != 1205) {
			return err
		}
	}
}
