package verify

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strconv"
)

// chunk is a range of the chunk column, [lo, hi); an empty bound is open.
// Bounds are integer literals, validated before they enter SQL.
type chunk struct {
	lo, hi string
}

// where returns the condition that selects the chunk's rows of column col.
func (c chunk) where(col string) string {
	q := quoteIdent(col)
	switch {
	case c.lo == "" && c.hi == "":
		return ""
	case c.lo == "":
		return q + " < " + c.hi
	case c.hi == "":
		return q + " >= " + c.lo
	}
	return q + " >= " + c.lo + " AND " + q + " < " + c.hi
}

// label names the chunk in a message: "id in [1000,2000)", "id < 1".
func (c chunk) label(col string) string {
	switch {
	case c.lo == "" && c.hi == "":
		return "all rows"
	case c.lo == "":
		return col + " < " + c.hi
	case c.hi == "":
		return col + " >= " + c.lo
	}
	return fmt.Sprintf("%s in [%s,%s)", col, c.lo, c.hi)
}

// chunks cuts the key range of column col of t into chunks of about n rows,
// as the server behind q sees it (the master). The first chunk ends at the
// smallest key and the last one is open-ended, so that every key the other
// server may hold falls into one chunk. An empty table is one chunk.
func chunks(ctx context.Context, q rowQueryer, t *table, col column, n int) ([]chunk, error) {
	from := quoteIdent(t.key.schema) + "." + quoteIdent(t.key.table)
	c := quoteIdent(col.name)
	first, ok, err := intValue(ctx, q, col, "SELECT MIN("+c+") FROM "+from)
	if err != nil || !ok {
		return []chunk{{}}, err
	}
	bounds := []string{first}
	for cur := first; ; {
		next, ok, err := intValue(ctx, q, col, fmt.Sprintf("SELECT %s FROM %s WHERE %s >= %s ORDER BY %s LIMIT 1 OFFSET %d",
			c, from, c, cur, c, n))
		if err != nil {
			return nil, err
		}
		if ok && next == cur { // more than n rows share the first key column
			next, ok, err = intValue(ctx, q, col, fmt.Sprintf("SELECT MIN(%s) FROM %s WHERE %s > %s", c, from, c, cur))
			if err != nil {
				return nil, err
			}
		}
		if !ok {
			break
		}
		bounds = append(bounds, next)
		cur = next
	}
	out := []chunk{{hi: bounds[0]}}
	for i, b := range bounds {
		ch := chunk{lo: b}
		if i+1 < len(bounds) {
			ch.hi = bounds[i+1]
		}
		out = append(out, ch)
	}
	return out, nil
}

// intValue runs a query that returns one integer of column col or no row or
// NULL (ok false), and checks that the value is an integer literal.
func intValue(ctx context.Context, q rowQueryer, col column, query string) (string, bool, error) {
	var v sql.NullString
	err := q.QueryRowContext(ctx, query).Scan(&v)
	if errors.Is(err, sql.ErrNoRows) || (err == nil && !v.Valid) {
		return "", false, nil
	}
	if err != nil {
		return "", false, err
	}
	if col.unsigned() {
		_, err = strconv.ParseUint(v.String, 10, 64)
	} else {
		_, err = strconv.ParseInt(v.String, 10, 64)
	}
	if err != nil {
		return "", false, fmt.Errorf("key %s value %q is not an integer", col.name, v.String)
	}
	return v.String, true, nil
}
