package verify

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"math/big"
	"strings"
)

// nullRowSentinel is added to a digest's sum for each row whose token string
// came out NULL. A real sum stays below it: each row adds less than 2^64, so
// up to 5*10^20 rows fit below 10^40.
const nullRowSentinel = "10000000000000000000000000000000000000000"

var sentinel, _ = new(big.Int).SetString(nullRowSentinel, 10)

// digest is COUNT(*) and the sum of row hashes over a set of rows.
type digest struct {
	rows int64
	sum  string // decimal
}

// tokenExpr returns the SQL expression that renders column c exactly, as text
// without commas, or 'N' if it is NULL. See the package documentation for why
// each type gets its form.
func tokenExpr(c column) string {
	col := quoteIdent(c.name)
	var expr string
	switch c.dataType {
	case "tinyint", "smallint", "mediumint", "int", "integer", "bigint", "decimal", "numeric", "year",
		"date", "time", "datetime", "timestamp":
		expr = "CAST(" + col + " AS CHAR)"
	case "float", "double", "real", "double precision":
		expr = "CAST(CAST(" + col + " AS DOUBLE) AS CHAR)"
	case "bit", "enum", "set":
		expr = "CAST(" + col + "+0 AS CHAR)"
	case "tinytext", "text", "mediumtext", "longtext", "json",
		"tinyblob", "blob", "mediumblob", "longblob",
		"geometry", "point", "linestring", "polygon", "multipoint", "multilinestring",
		"multipolygon", "geometrycollection":
		expr = "MD5(" + col + ")"
	default: // char, varchar, binary, varbinary, inet4, inet6, uuid ...
		expr = "HEX(" + col + ")"
	}
	return "IF(" + col + " IS NULL, 'N', " + expr + ")"
}

// rowHashExpr returns the expression of one row's hash: the first 64 bits of
// the MD5 of its stored columns' tokens, or nullRowSentinel if the tokens
// came out NULL (a string function hit max_allowed_packet). CONCAT, unlike
// CONCAT_WS, turns NULL if any token is NULL, so no token is lost silently.
func rowHashExpr(cols []column) string {
	var toks []string
	for _, c := range cols {
		if !c.virtual() {
			toks = append(toks, tokenExpr(c))
		}
	}
	row := "''"
	if len(toks) > 0 {
		row = "CONCAT(" + strings.Join(toks, ", ',', ") + ")"
	}
	return "COALESCE(CAST(CONV(LEFT(MD5(" + row + "), 16), 16, 10) AS UNSIGNED), " + nullRowSentinel + ")"
}

// digestQuery returns the query of the digest of the rows of t matching
// where ("" for all rows).
func digestQuery(t *table, where string) string {
	q := "SELECT COUNT(*), CAST(COALESCE(SUM(" + rowHashExpr(t.columns) + "), 0) AS CHAR) FROM " +
		quoteIdent(t.key.schema) + "." + quoteIdent(t.key.table)
	if where != "" {
		q += " WHERE " + where
	}
	return q
}

// countQuery returns the query that counts the rows of t.
func countQuery(t *table) string {
	return "SELECT COUNT(*) FROM " + quoteIdent(t.key.schema) + "." + quoteIdent(t.key.table)
}

// rowQueryer runs single-row queries; *sql.Conn implements it.
type rowQueryer interface {
	QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row
}

// digestRows computes the digest of the rows of t matching where.
func digestRows(ctx context.Context, q rowQueryer, t *table, where string) (digest, error) {
	var d digest
	if err := q.QueryRowContext(ctx, digestQuery(t, where)).Scan(&d.rows, &d.sum); err != nil {
		return digest{}, err
	}
	sum, ok := new(big.Int).SetString(d.sum, 10)
	if !ok {
		return digest{}, fmt.Errorf("digest sum %q is not a number", d.sum)
	}
	if sum.Cmp(sentinel) >= 0 {
		bad := new(big.Int).Quo(sum, sentinel)
		return digest{}, fmt.Errorf("%s rows: %w", bad, ErrRowTooLarge)
	}
	return d, nil
}

// countRows counts the rows of t.
func countRows(ctx context.Context, q rowQueryer, t *table) (int64, error) {
	var n int64
	err := q.QueryRowContext(ctx, countQuery(t)).Scan(&n)
	return n, err
}

// both runs f and g concurrently and returns their errors joined.
func both(f, g func() error) error {
	ch := make(chan error, 1)
	go func() { ch <- g() }()
	err := f()
	return errors.Join(err, <-ch)
}
