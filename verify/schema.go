package verify

import (
	"context"
	"database/sql"
	"fmt"
	"sort"
	"strings"
)

// tableKey names a table.
type tableKey struct{ schema, table string }

func (k tableKey) String() string { return k.schema + "." + k.table }

// column is one row of information_schema.COLUMNS.
type column struct {
	name       string // COLUMN_NAME
	dataType   string // DATA_TYPE, lower case: int, varchar, longtext (also JSON) ...
	columnType string // COLUMN_TYPE: int(10) unsigned, enum('a','b') ...
	collation  string // COLLATION_NAME, empty for non-strings
	nullable   string // IS_NULLABLE: YES or NO
	extra      string // EXTRA: "VIRTUAL GENERATED", "STORED GENERATED, INVISIBLE" ...
}

// virtual reports whether the column is a virtual generated column, which is
// computed on read and not stored. MariaDB 10.11 reports PERSISTENT and STORED
// columns alike as "STORED GENERATED".
func (c column) virtual() bool {
	return strings.Contains(strings.ToUpper(c.extra), "VIRTUAL")
}

// generated returns the generated-column kind for the signature.
func (c column) generated() string {
	switch up := strings.ToUpper(c.extra); {
	case strings.Contains(up, "VIRTUAL"):
		return " VIRTUAL"
	case strings.Contains(up, "STORED") || strings.Contains(up, "PERSISTENT"):
		return " STORED"
	}
	return ""
}

// signature is what must be equal on both sides, in a form for messages.
func (c column) signature() string {
	s := quoteIdent(c.name) + " " + c.columnType
	if c.collation != "" {
		s += " COLLATE " + c.collation
	}
	if c.nullable == "NO" {
		s += " NOT NULL"
	}
	return s + c.generated()
}

// table is one table as one server sees it.
type table struct {
	key     tableKey
	columns []column // in ORDINAL_POSITION order
	pk      string   // first column of the primary key, "" if none
}

// chunkColumn returns the column that chunks the table: the first column of
// the primary key if it is an integer; ok is false otherwise.
func (t *table) chunkColumn() (c column, ok bool) {
	if t.pk == "" {
		return column{}, false
	}
	for _, c := range t.columns {
		if c.name == t.pk {
			switch c.dataType {
			case "tinyint", "smallint", "mediumint", "int", "bigint":
				return c, true
			}
			return column{}, false
		}
	}
	return column{}, false
}

// unsigned reports whether an integer column is unsigned.
func (c column) unsigned() bool {
	return strings.Contains(strings.ToLower(c.columnType), "unsigned")
}

// catalog holds the tables of one server.
type catalog map[tableKey]*table

// queryer is what loadCatalog needs of a connection.
type queryer interface {
	QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error)
}

// loadCatalog reads the base tables, their columns and their primary keys,
// skipping the schemas in exclude.
func loadCatalog(ctx context.Context, q queryer, exclude []string) (catalog, error) {
	notIn, args := notInList(exclude)
	cat := catalog{}
	err := eachRow(ctx, q, `SELECT TABLE_SCHEMA, TABLE_NAME FROM information_schema.TABLES
		WHERE TABLE_TYPE IN ('BASE TABLE', 'SYSTEM VERSIONED') AND TABLE_SCHEMA NOT IN (`+notIn+`)`, args,
		func(r *sql.Rows) error {
			var k tableKey
			if err := r.Scan(&k.schema, &k.table); err != nil {
				return err
			}
			cat[k] = &table{key: k}
			return nil
		})
	if err != nil {
		return nil, fmt.Errorf("list tables: %w", err)
	}
	err = eachRow(ctx, q, `SELECT TABLE_SCHEMA, TABLE_NAME, COLUMN_NAME, LOWER(DATA_TYPE), COLUMN_TYPE,
		COALESCE(COLLATION_NAME, ''), IS_NULLABLE, EXTRA
		FROM information_schema.COLUMNS WHERE TABLE_SCHEMA NOT IN (`+notIn+`)
		ORDER BY TABLE_SCHEMA, TABLE_NAME, ORDINAL_POSITION`, args,
		func(r *sql.Rows) error {
			var k tableKey
			var c column
			if err := r.Scan(&k.schema, &k.table, &c.name, &c.dataType, &c.columnType, &c.collation, &c.nullable, &c.extra); err != nil {
				return err
			}
			if t := cat[k]; t != nil { // views have columns too
				t.columns = append(t.columns, c)
			}
			return nil
		})
	if err != nil {
		return nil, fmt.Errorf("list columns: %w", err)
	}
	err = eachRow(ctx, q, `SELECT TABLE_SCHEMA, TABLE_NAME, COLUMN_NAME FROM information_schema.STATISTICS
		WHERE INDEX_NAME = 'PRIMARY' AND SEQ_IN_INDEX = 1 AND TABLE_SCHEMA NOT IN (`+notIn+`)`, args,
		func(r *sql.Rows) error {
			var k tableKey
			var name string
			if err := r.Scan(&k.schema, &k.table, &name); err != nil {
				return err
			}
			if t := cat[k]; t != nil {
				t.pk = name
			}
			return nil
		})
	if err != nil {
		return nil, fmt.Errorf("list primary keys: %w", err)
	}
	return cat, nil
}

// eachRow runs query and calls fn for every row.
func eachRow(ctx context.Context, q queryer, query string, args []any, fn func(*sql.Rows) error) error {
	rows, err := q.QueryContext(ctx, query, args...)
	if err != nil {
		return err
	}
	defer rows.Close()
	for rows.Next() {
		if err := fn(rows); err != nil {
			return err
		}
	}
	return rows.Err()
}

// notInList returns "?, ?, ?" and the arguments for a NOT IN list.
func notInList(names []string) (string, []any) {
	args := make([]any, len(names))
	for i, n := range names {
		args[i] = n
	}
	return strings.TrimSuffix(strings.Repeat("?, ", len(names)), ", "), args
}

// allKeys returns the tables of both catalogs, sorted by schema and name.
func allKeys(a, b catalog) []tableKey {
	seen := map[tableKey]bool{}
	var keys []tableKey
	for _, cat := range []catalog{a, b} {
		for k := range cat {
			if !seen[k] {
				seen[k] = true
				keys = append(keys, k)
			}
		}
	}
	sort.Slice(keys, func(i, j int) bool {
		if keys[i].schema != keys[j].schema {
			return keys[i].schema < keys[j].schema
		}
		return keys[i].table < keys[j].table
	})
	return keys
}

// columnsDiff describes the first difference between two column lists, or
// returns "" if they are equal.
func columnsDiff(master, standby []column) string {
	for i := 0; i < len(master) || i < len(standby); i++ {
		switch {
		case i >= len(master):
			return fmt.Sprintf("columns differ: standby has %d columns, master %d; column %d on standby is %s",
				len(standby), len(master), i+1, standby[i].signature())
		case i >= len(standby):
			return fmt.Sprintf("columns differ: master has %d columns, standby %d; column %d on master is %s",
				len(master), len(standby), i+1, master[i].signature())
		case master[i].signature() != standby[i].signature():
			return fmt.Sprintf("columns differ: column %d is %s on master, %s on standby",
				i+1, master[i].signature(), standby[i].signature())
		}
	}
	return ""
}

// quoteIdent quotes a schema, table or column name with backticks.
func quoteIdent(name string) string {
	return "`" + strings.ReplaceAll(name, "`", "``") + "`"
}
