package clone

import (
	"context"
	"database/sql"
	"fmt"
	"sort"
	"strings"
)

// systemSchemas are never copied (nor counted as user data).
var systemSchemas = []string{"mysql", "information_schema", "performance_schema", "sys"}

// column is one column of a table.
type column struct {
	name       string
	dataType   string // DATA_TYPE, lower case
	columnType string // COLUMN_TYPE
	generated  bool   // VIRTUAL or STORED/PERSISTENT: computed by the standby
}

// table is one base table on the master.
type table struct {
	schema, name string
	engine       string
	columns      []column
	createSQL    string
	// deferredKeys are the secondary index definitions taken out of
	// createSQL, added after the data (Config.DeferIndexes).
	deferredKeys []string
	chunkCol     string // first primary-key column when it is an integer, "" otherwise
	estRows      int64  // TABLE_ROWS (an estimate)
	dataBytes    int64  // DATA_LENGTH
}

func (t *table) String() string { return t.schema + "." + t.name }

func (t *table) quoted() string { return quoteIdent(t.schema) + "." + quoteIdent(t.name) }

// transactional reports whether a consistent snapshot covers the table.
func (t *table) transactional() bool {
	return strings.EqualFold(t.engine, "InnoDB")
}

// object is a view, trigger or routine: created from its statement in its
// schema with its sql_mode.
type object struct {
	kind, schema, name string
	sql, sqlMode       string
}

// catalog is what the master holds, as read under BACKUP STAGE BLOCK_DDL.
type catalog struct {
	schemas  []object // kind "schema", sql = CREATE DATABASE
	tables   []*table
	views    []object
	triggers []object
	routines []object
	events   int
}

func quoteIdent(s string) string { return "`" + strings.ReplaceAll(s, "`", "``") + "`" }

func notInSystem() string {
	q := make([]string, len(systemSchemas))
	for i, s := range systemSchemas {
		q[i] = "'" + s + "'"
	}
	return strings.Join(q, ",")
}

// queryer is a connection or a pool.
type queryer interface {
	QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error)
}

// eachRow runs q and calls f for every row.
func eachRow(ctx context.Context, db queryer, q string, f func(*sql.Rows) error, args ...any) error {
	rows, err := db.QueryContext(ctx, q, args...)
	if err != nil {
		return err
	}
	defer rows.Close()
	for rows.Next() {
		if err := f(rows); err != nil {
			return err
		}
	}
	return rows.Err()
}

// showRow runs a SHOW statement that returns one row and returns it by
// column name.
func showRow(ctx context.Context, db queryer, q string) (map[string]string, error) {
	rows, err := db.QueryContext(ctx, q)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	cols, _ := rows.Columns()
	if !rows.Next() {
		if err := rows.Err(); err != nil {
			return nil, err
		}
		return nil, fmt.Errorf("%s: no row", q)
	}
	vals := make([]sql.NullString, len(cols))
	ptrs := make([]any, len(cols))
	for i := range vals {
		ptrs[i] = &vals[i]
	}
	if err := rows.Scan(ptrs...); err != nil {
		return nil, err
	}
	out := make(map[string]string, len(cols))
	for i, c := range cols {
		out[c] = vals[i].String
	}
	return out, rows.Err()
}

// readCatalog reads every user schema of the master.
func readCatalog(ctx context.Context, db queryer) (*catalog, error) {
	cat := &catalog{}
	byKey := map[string]*table{}
	err := eachRow(ctx, db, "SELECT SCHEMA_NAME FROM information_schema.SCHEMATA WHERE SCHEMA_NAME NOT IN ("+notInSystem()+") ORDER BY SCHEMA_NAME",
		func(r *sql.Rows) error {
			s := object{kind: "schema"}
			if err := r.Scan(&s.name); err != nil {
				return err
			}
			cat.schemas = append(cat.schemas, s)
			return nil
		})
	if err != nil {
		return nil, fmt.Errorf("list schemas: %w", err)
	}
	for i := range cat.schemas {
		row, err := showRow(ctx, db, "SHOW CREATE DATABASE "+quoteIdent(cat.schemas[i].name))
		if err != nil {
			return nil, err
		}
		cat.schemas[i].sql = row["Create Database"]
	}
	err = eachRow(ctx, db, `SELECT TABLE_SCHEMA, TABLE_NAME, TABLE_TYPE, COALESCE(ENGINE, ''), COALESCE(TABLE_ROWS, 0), COALESCE(DATA_LENGTH, 0)
		FROM information_schema.TABLES WHERE TABLE_SCHEMA NOT IN (`+notInSystem()+`)`,
		func(r *sql.Rows) error {
			t := &table{}
			var typ string
			if err := r.Scan(&t.schema, &t.name, &typ, &t.engine, &t.estRows, &t.dataBytes); err != nil {
				return err
			}
			switch typ {
			case "VIEW":
				cat.views = append(cat.views, object{kind: "view", schema: t.schema, name: t.name})
			case "BASE TABLE", "SYSTEM VERSIONED":
				cat.tables = append(cat.tables, t)
				byKey[t.String()] = t
			default:
				return fmt.Errorf("%s is a %s: the clone copies base tables and views only", t, typ)
			}
			return nil
		})
	if err != nil {
		return nil, fmt.Errorf("list tables: %w", err)
	}
	if err := readColumns(ctx, db, byKey); err != nil {
		return nil, err
	}
	for _, t := range cat.tables {
		row, err := showRow(ctx, db, "SHOW CREATE TABLE "+t.quoted())
		if err != nil {
			return nil, fmt.Errorf("SHOW CREATE TABLE %s: %w", t, err)
		}
		t.createSQL = row["Create Table"]
	}
	// Biggest first: the long tables start early and the small ones fill
	// the gaps at the end.
	sort.SliceStable(cat.tables, func(i, j int) bool { return cat.tables[i].dataBytes > cat.tables[j].dataBytes })
	if err := readObjects(ctx, db, cat); err != nil {
		return nil, err
	}
	return cat, nil
}

// readColumns fills in the tables' columns and chunk columns.
func readColumns(ctx context.Context, db queryer, byKey map[string]*table) error {
	err := eachRow(ctx, db, `SELECT TABLE_SCHEMA, TABLE_NAME, COLUMN_NAME, LOWER(DATA_TYPE), COLUMN_TYPE, EXTRA
		FROM information_schema.COLUMNS WHERE TABLE_SCHEMA NOT IN (`+notInSystem()+`) ORDER BY TABLE_SCHEMA, TABLE_NAME, ORDINAL_POSITION`,
		func(r *sql.Rows) error {
			var schema, name, extra string
			var c column
			if err := r.Scan(&schema, &name, &c.name, &c.dataType, &c.columnType, &extra); err != nil {
				return err
			}
			up := strings.ToUpper(extra)
			c.generated = strings.Contains(up, "VIRTUAL") || strings.Contains(up, "STORED") || strings.Contains(up, "PERSISTENT")
			if t := byKey[schema+"."+name]; t != nil {
				t.columns = append(t.columns, c)
			}
			return nil
		})
	if err != nil {
		return fmt.Errorf("list columns: %w", err)
	}
	return eachRow(ctx, db, `SELECT TABLE_SCHEMA, TABLE_NAME, COLUMN_NAME FROM information_schema.STATISTICS
		WHERE INDEX_NAME = 'PRIMARY' AND SEQ_IN_INDEX = 1 AND TABLE_SCHEMA NOT IN (`+notInSystem()+`)`,
		func(r *sql.Rows) error {
			var schema, name, col string
			if err := r.Scan(&schema, &name, &col); err != nil {
				return err
			}
			t := byKey[schema+"."+name]
			if t == nil {
				return nil
			}
			for _, c := range t.columns {
				if c.name == col && isInteger(c.dataType) && !c.generated {
					t.chunkCol = col
				}
			}
			return nil
		})
}

func isInteger(dataType string) bool {
	switch dataType {
	case "tinyint", "smallint", "mediumint", "int", "bigint":
		return true
	}
	return false
}

// readObjects reads views, triggers and routines, with their statements.
func readObjects(ctx context.Context, db queryer, cat *catalog) error {
	for i := range cat.views {
		v := &cat.views[i]
		row, err := showRow(ctx, db, "SHOW CREATE VIEW "+quoteIdent(v.schema)+"."+quoteIdent(v.name))
		if err != nil {
			return fmt.Errorf("SHOW CREATE VIEW %s.%s: %w", v.schema, v.name, err)
		}
		v.sql = row["Create View"]
	}
	err := eachRow(ctx, db, "SELECT TRIGGER_SCHEMA, TRIGGER_NAME FROM information_schema.TRIGGERS WHERE TRIGGER_SCHEMA NOT IN ("+notInSystem()+") ORDER BY TRIGGER_SCHEMA, EVENT_OBJECT_TABLE, ACTION_ORDER",
		func(r *sql.Rows) error {
			o := object{kind: "trigger"}
			if err := r.Scan(&o.schema, &o.name); err != nil {
				return err
			}
			cat.triggers = append(cat.triggers, o)
			return nil
		})
	if err != nil {
		return fmt.Errorf("list triggers: %w", err)
	}
	for i := range cat.triggers {
		o := &cat.triggers[i]
		row, err := showRow(ctx, db, "SHOW CREATE TRIGGER "+quoteIdent(o.schema)+"."+quoteIdent(o.name))
		if err != nil {
			return fmt.Errorf("SHOW CREATE TRIGGER %s.%s: %w", o.schema, o.name, err)
		}
		o.sql, o.sqlMode = row["SQL Original Statement"], row["sql_mode"]
	}
	err = eachRow(ctx, db, "SELECT ROUTINE_SCHEMA, ROUTINE_NAME, ROUTINE_TYPE FROM information_schema.ROUTINES WHERE ROUTINE_SCHEMA NOT IN ("+notInSystem()+") ORDER BY 1, 2",
		func(r *sql.Rows) error {
			o := object{}
			if err := r.Scan(&o.schema, &o.name, &o.kind); err != nil {
				return err
			}
			o.kind = strings.ToLower(o.kind)
			cat.routines = append(cat.routines, o)
			return nil
		})
	if err != nil {
		return fmt.Errorf("list routines: %w", err)
	}
	for i := range cat.routines {
		o := &cat.routines[i]
		kind := strings.ToUpper(o.kind) // PROCEDURE, FUNCTION (PACKAGE: refused below)
		if kind != "PROCEDURE" && kind != "FUNCTION" {
			return fmt.Errorf("%s.%s is a %s: the clone copies procedures and functions only", o.schema, o.name, o.kind)
		}
		row, err := showRow(ctx, db, "SHOW CREATE "+kind+" "+quoteIdent(o.schema)+"."+quoteIdent(o.name))
		if err != nil {
			return fmt.Errorf("SHOW CREATE %s %s.%s: %w", kind, o.schema, o.name, err)
		}
		o.sql, o.sqlMode = row["Create "+strings.ToUpper(kind[:1])+strings.ToLower(kind[1:])], row["sql_mode"]
		if o.sql == "" {
			return fmt.Errorf("SHOW CREATE %s %s.%s returned no statement: the master user needs SELECT on mysql.proc (or to be its definer)", kind, o.schema, o.name)
		}
	}
	return eachRow(ctx, db, "SELECT COUNT(*) FROM information_schema.EVENTS WHERE EVENT_SCHEMA NOT IN ("+notInSystem()+")",
		func(r *sql.Rows) error { return r.Scan(&cat.events) })
}

// deferKeys takes the secondary indexes (KEY, UNIQUE KEY, FULLTEXT KEY,
// SPATIAL KEY lines of SHOW CREATE TABLE) out of t's CREATE TABLE, to be
// added once the rows are in: building an index from sorted rows is faster
// than maintaining it row by row. A table with a foreign key keeps them
// (InnoDB would make indexes of its own for the foreign key).
func (t *table) deferKeys() {
	lines := strings.Split(t.createSQL, "\n")
	for _, l := range lines {
		if strings.Contains(l, " FOREIGN KEY ") {
			return
		}
	}
	var keep []string
	var keys []string
	for _, l := range lines {
		trimmed := strings.TrimSuffix(strings.TrimSpace(l), ",")
		switch {
		case strings.HasPrefix(trimmed, "KEY "), strings.HasPrefix(trimmed, "UNIQUE KEY "),
			strings.HasPrefix(trimmed, "FULLTEXT KEY "), strings.HasPrefix(trimmed, "SPATIAL KEY "):
			keys = append(keys, trimmed)
		default:
			keep = append(keep, l)
		}
	}
	if len(keys) == 0 {
		return
	}
	// The line before the closing ") ENGINE=..." must not end with a comma.
	for i := len(keep) - 1; i > 0; i-- {
		if strings.HasPrefix(keep[i], ")") {
			keep[i-1] = strings.TrimSuffix(keep[i-1], ",")
			break
		}
	}
	t.createSQL, t.deferredKeys = strings.Join(keep, "\n"), keys
}

// addKeysSQL is the ALTER TABLE that adds the deferred indexes.
func (t *table) addKeysSQL() string {
	adds := make([]string, len(t.deferredKeys))
	for i, k := range t.deferredKeys {
		adds[i] = "ADD " + k
	}
	return "ALTER TABLE " + t.quoted() + " " + strings.Join(adds, ", ")
}
