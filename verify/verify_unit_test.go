package verify

import (
	"bytes"
	"errors"
	"strings"
	"testing"
	"time"
)

func TestOptionsValidate(t *testing.T) {
	tests := []struct {
		name    string
		opt     Options
		wantErr bool
	}{
		{name: "zero", opt: Options{}},
		{name: "all set", opt: Options{ChunkRows: 5, Exclude: []string{"a"}, Consistent: true, Timeout: time.Second}},
		{name: "negative chunk rows", opt: Options{ChunkRows: -1}, wantErr: true},
		{name: "negative timeout", opt: Options{Timeout: -time.Second}, wantErr: true},
		{name: "empty exclude", opt: Options{Exclude: []string{""}}, wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.opt.Validate()
			if (err != nil) != tt.wantErr {
				t.Fatalf("Validate() = %v, wantErr %v", err, tt.wantErr)
			}
			if err != nil && !errors.Is(err, ErrInvalidOptions) {
				t.Fatalf("Validate() = %v, does not wrap ErrInvalidOptions", err)
			}
		})
	}
}

func TestTokenExpr(t *testing.T) {
	tests := []struct {
		name string
		col  column
		want string
	}{
		{name: "int", col: column{name: "a", dataType: "int"}, want: "CAST(`a` AS CHAR)"},
		{name: "decimal", col: column{name: "a", dataType: "decimal"}, want: "CAST(`a` AS CHAR)"},
		{name: "float through double", col: column{name: "a", dataType: "float"}, want: "CAST(CAST(`a` AS DOUBLE) AS CHAR)"},
		{name: "double", col: column{name: "a", dataType: "double"}, want: "CAST(CAST(`a` AS DOUBLE) AS CHAR)"},
		{name: "bit", col: column{name: "a", dataType: "bit"}, want: "CAST(`a`+0 AS CHAR)"},
		{name: "enum index", col: column{name: "a", dataType: "enum"}, want: "CAST(`a`+0 AS CHAR)"},
		{name: "timestamp", col: column{name: "a", dataType: "timestamp"}, want: "CAST(`a` AS CHAR)"},
		{name: "varchar bytes", col: column{name: "a", dataType: "varchar"}, want: "HEX(`a`)"},
		{name: "binary bytes", col: column{name: "a", dataType: "binary"}, want: "HEX(`a`)"},
		{name: "json is longtext", col: column{name: "a", dataType: "longtext"}, want: "MD5(`a`)"},
		{name: "blob", col: column{name: "a", dataType: "blob"}, want: "MD5(`a`)"},
		{name: "point", col: column{name: "a", dataType: "point"}, want: "MD5(`a`)"},
		{name: "unknown type", col: column{name: "a", dataType: "inet6"}, want: "HEX(`a`)"},
		{name: "backtick in name", col: column{name: "a`b", dataType: "int"}, want: "CAST(`a``b` AS CHAR)"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := tokenExpr(tt.col)
			want := "IF(" + quoteIdent(tt.col.name) + " IS NULL, 'N', " + tt.want + ")"
			if got != want {
				t.Fatalf("tokenExpr = %s, want %s", got, want)
			}
		})
	}
}

func TestRowHashExprSkipsVirtualColumns(t *testing.T) {
	cols := []column{
		{name: "id", dataType: "int"},
		{name: "v", dataType: "int", extra: "VIRTUAL GENERATED"},
		{name: "vi", dataType: "int", extra: "VIRTUAL GENERATED, INVISIBLE"},
		{name: "p", dataType: "int", extra: "STORED GENERATED"},
		{name: "i", dataType: "int", extra: "INVISIBLE"},
	}
	expr := rowHashExpr(cols)
	for _, name := range []string{"id", "p", "i"} {
		if !strings.Contains(expr, quoteIdent(name)) {
			t.Errorf("stored column %s not in %s", name, expr)
		}
	}
	for _, name := range []string{"v", "vi"} {
		if strings.Contains(expr, quoteIdent(name)) {
			t.Errorf("virtual column %s in %s", name, expr)
		}
	}
}

func TestChunkWhereAndLabel(t *testing.T) {
	tests := []struct {
		name      string
		ch        chunk
		wantWhere string
		wantLabel string
	}{
		{name: "whole", ch: chunk{}, wantWhere: "", wantLabel: "all rows"},
		{name: "below", ch: chunk{hi: "1"}, wantWhere: "`id` < 1", wantLabel: "id < 1"},
		{name: "range", ch: chunk{lo: "1", hi: "1001"}, wantWhere: "`id` >= 1 AND `id` < 1001", wantLabel: "id in [1,1001)"},
		{name: "above", ch: chunk{lo: "-5"}, wantWhere: "`id` >= -5", wantLabel: "id >= -5"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := tt.ch.where("id"); got != tt.wantWhere {
				t.Errorf("where = %q, want %q", got, tt.wantWhere)
			}
			if got := tt.ch.label("id"); got != tt.wantLabel {
				t.Errorf("label = %q, want %q", got, tt.wantLabel)
			}
		})
	}
}

func TestColumnsDiff(t *testing.T) {
	a := column{name: "a", columnType: "int(11)", nullable: "YES"}
	b := column{name: "b", columnType: "varchar(10)", collation: "utf8mb4_general_ci", nullable: "NO"}
	tests := []struct {
		name            string
		master, standby []column
		want            string
	}{
		{name: "equal", master: []column{a, b}, standby: []column{a, b}, want: ""},
		{name: "order", master: []column{a, b}, standby: []column{b, a},
			want: "columns differ: column 1 is `a` int(11) on master, `b` varchar(10) COLLATE utf8mb4_general_ci NOT NULL on standby"},
		{name: "standby longer", master: []column{a}, standby: []column{a, b},
			want: "columns differ: standby has 2 columns, master 1; column 2 on standby is `b` varchar(10) COLLATE utf8mb4_general_ci NOT NULL"},
		{name: "master longer", master: []column{a, b}, standby: []column{a},
			want: "columns differ: master has 2 columns, standby 1; column 2 on master is `b` varchar(10) COLLATE utf8mb4_general_ci NOT NULL"},
		{name: "virtual vs stored", master: []column{{name: "g", columnType: "int(11)", extra: "VIRTUAL GENERATED"}},
			standby: []column{{name: "g", columnType: "int(11)", extra: "STORED GENERATED"}},
			want:    "columns differ: column 1 is `g` int(11) VIRTUAL on master, `g` int(11) STORED on standby"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := columnsDiff(tt.master, tt.standby); got != tt.want {
				t.Fatalf("columnsDiff = %q, want %q", got, tt.want)
			}
		})
	}
}

func TestWriteText(t *testing.T) {
	tests := []struct {
		name string
		rep  Report
		want string
	}{
		{
			name: "equal",
			rep: Report{MasterGTID: "0-1-5", StandbyGTID: "0-1-5", Equal: true, Tables: []TableResult{
				{Schema: "db", Table: "t", MasterRows: 1234, StandbyRows: 1234, Equal: true},
			}},
			want: "= db.t 1234 rows\nall 1 tables equal (master at 0-1-5, standby at 0-1-5)\n",
		},
		{
			name: "different",
			rep: Report{Tables: []TableResult{
				{Schema: "db", Table: "a", Equal: true, MasterRows: 3, StandbyRows: 3},
				{Schema: "db", Table: "b", Diffs: []string{"missing on standby"}},
				{Schema: "db", Table: "c", Diffs: []string{"chunk id in [1,2): digests differ", "chunk id >= 2: digests differ"}},
			}},
			want: "= db.a 3 rows\n≠ db.b: missing on standby\n≠ db.c: chunk id in [1,2): digests differ; chunk id >= 2: digests differ\n" +
				"2 of 3 tables differ (master at empty GTID position, standby at empty GTID position)\n",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var buf bytes.Buffer
			tt.rep.WriteText(&buf)
			if buf.String() != tt.want {
				t.Fatalf("WriteText:\n%s\nwant:\n%s", buf.String(), tt.want)
			}
		})
	}
}
