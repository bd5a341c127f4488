package clone

import (
	"bytes"
	"database/sql"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"
)

func TestSplitRange(t *testing.T) {
	tests := []struct {
		name   string
		lo, hi string
		n      int64
		want   []string
	}{
		{name: "one chunk", lo: "1", hi: "100", n: 1, want: []string{"c >= 1 AND c <= 100"}},
		{name: "even split", lo: "1", hi: "100", n: 4, want: []string{"c >= 1 AND c < 26", "c >= 26 AND c < 51", "c >= 51 AND c < 76", "c >= 76 AND c <= 100"}},
		{name: "more chunks than values", lo: "5", hi: "6", n: 10, want: []string{"c >= 5 AND c < 6", "c >= 6 AND c <= 6"}},
		{name: "a single value", lo: "7", hi: "7", n: 3, want: []string{"c >= 7 AND c <= 7"}},
		{name: "negative to positive", lo: "-10", hi: "9", n: 2, want: []string{"c >= -10 AND c < 0", "c >= 0 AND c <= 9"}},
		{name: "beyond int64", lo: "0", hi: "18446744073709551615", n: 2, want: []string{"c >= 0 AND c < 9223372036854775808", "c >= 9223372036854775808 AND c <= 18446744073709551615"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var got []string
			for _, s := range splitRange(tc.lo, tc.hi, tc.n) {
				got = append(got, s.where("c"))
			}
			if strings.Join(got, "|") != strings.Join(tc.want, "|") {
				t.Fatalf("splitRange(%s, %s, %d) = %q, want %q", tc.lo, tc.hi, tc.n, got, tc.want)
			}
		})
	}
}

func TestEncodeRow(t *testing.T) {
	vals := []sql.RawBytes{[]byte("-12.500"), []byte("2038-01-19 03:14:07.999999"), []byte("ab\x00\x00"), nil, []byte{}, []byte("'; DROP")}
	kinds := []valueKind{kindNumber, kindQuoted, kindHex, kindHex, kindHex, kindHex}
	got, n := encodeRow(nil, vals, kinds)
	want := `(-12.500,'2038-01-19 03:14:07.999999',X'61620000',NULL,X'',X'273b2044524f50')`
	if string(got) != want || n != 7+26+4+0+0+7 {
		t.Fatalf("encodeRow = %s (%d bytes), want %s", got, n, want)
	}
}

func TestKindOf(t *testing.T) {
	for typ, want := range map[string]valueKind{"bigint": kindNumber, "decimal": kindNumber, "double": kindNumber, "float": kindNumber, "year": kindNumber,
		"timestamp": kindQuoted, "time": kindQuoted, "date": kindQuoted, "datetime": kindQuoted,
		"binary": kindHex, "varchar": kindHex, "longtext": kindHex, "bit": kindHex, "enum": kindHex, "set": kindHex, "point": kindHex, "geometry": kindHex, "blob": kindHex} {
		if got := kindOf(typ); got != want {
			t.Errorf("kindOf(%s) = %d, want %d", typ, got, want)
		}
	}
	if got := selectExpr(column{name: "f", dataType: "float"}); got != "CAST(`f` AS DOUBLE)" {
		t.Errorf("FLOAT is read as %s, want its exact DOUBLE value", got)
	}
}

func TestCheckStandbyEmpty(t *testing.T) {
	tests := []struct {
		name    string
		schemas map[string]int
		owned   []string
		replace bool
		wantErr string
	}{
		{name: "empty standby", schemas: map[string]int{}},
		{name: "empty schemas only", schemas: map[string]int{"test": 0}},
		{name: "user data", schemas: map[string]int{"app": 3, "b": 1, "test": 0}, wantErr: "has schema app (3 objects), b (1 object): the clone does not overwrite it"},
		{name: "user data with --replace", schemas: map[string]int{"app": 3}, replace: true},
		{name: "an interrupted clone's own schemas", schemas: map[string]int{"app": 3}, owned: []string{"app"}},
		{name: "own and foreign", schemas: map[string]int{"app": 3, "other": 2}, owned: []string{"app"}, wantErr: "has schema other (2 objects)"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			err := checkStandbyEmpty(tc.schemas, tc.owned, tc.replace, "127.0.0.1:3307")
			if tc.wantErr == "" {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			if err == nil || !errors.Is(err, ErrStandbyHasData) || !strings.Contains(err.Error(), tc.wantErr) || !strings.Contains(err.Error(), "--replace") {
				t.Fatalf("err %v, want %q and --replace", err, tc.wantErr)
			}
		})
	}
}

func TestSQLString(t *testing.T) {
	if got := sqlString(`a'b\c`); got != `'a''b\\c'` {
		t.Fatalf("sqlString = %s", got)
	}
}

func TestConfigValidate(t *testing.T) {
	ok := DefaultConfig()
	ok.MasterDSN, ok.StandbyDSN, ok.Recorder = "m", "s", &StoreRecorder{}
	tests := []struct {
		name    string
		edit    func(*Config)
		wantErr string
	}{
		{name: "valid", edit: func(*Config) {}},
		{name: "no standby", edit: func(c *Config) { c.StandbyDSN = "" }, wantErr: "[standby]"},
		{name: "zero workers", edit: func(c *Config) { c.Workers = 0 }, wantErr: "--workers 0"},
		{name: "no recorder", edit: func(c *Config) { c.Recorder = nil }, wantErr: "recorder"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c := ok
			tc.edit(&c)
			err := c.Validate()
			if (err == nil) != (tc.wantErr == "") || (err != nil && !strings.Contains(err.Error(), tc.wantErr)) {
				t.Fatalf("Validate: %v, want %q", err, tc.wantErr)
			}
		})
	}
}

func TestDeferKeys(t *testing.T) {
	tb := &table{schema: "s", name: "t", createSQL: "CREATE TABLE `t` (\n  `id` int(11) NOT NULL,\n  `k` int(11) DEFAULT NULL,\n  `g` point NOT NULL,\n  PRIMARY KEY (`id`),\n  UNIQUE KEY `u` (`k`),\n  KEY `k2` (`k`,`id`),\n  SPATIAL KEY `g` (`g`)\n) ENGINE=InnoDB DEFAULT CHARSET=latin1"}
	tb.deferKeys()
	want := "CREATE TABLE `t` (\n  `id` int(11) NOT NULL,\n  `k` int(11) DEFAULT NULL,\n  `g` point NOT NULL,\n  PRIMARY KEY (`id`)\n) ENGINE=InnoDB DEFAULT CHARSET=latin1"
	if tb.createSQL != want {
		t.Fatalf("createSQL\n%s\nwant\n%s", tb.createSQL, want)
	}
	if got := tb.addKeysSQL(); got != "ALTER TABLE `s`.`t` ADD UNIQUE KEY `u` (`k`), ADD KEY `k2` (`k`,`id`), ADD SPATIAL KEY `g` (`g`)" {
		t.Fatalf("addKeysSQL = %s", got)
	}
	fk := &table{createSQL: "CREATE TABLE `c` (\n  `id` int(11) NOT NULL,\n  `p` int(11),\n  PRIMARY KEY (`id`),\n  KEY `p` (`p`),\n  CONSTRAINT `fk` FOREIGN KEY (`p`) REFERENCES `par` (`id`)\n) ENGINE=InnoDB"}
	before := fk.createSQL
	if fk.deferKeys(); fk.createSQL != before || len(fk.deferredKeys) != 0 {
		t.Fatal("a table with a foreign key lost its indexes")
	}
}

// TestBarsDraw: the bars draw the total and a table being copied, and
// finish without waiting forever.
func TestBarsDraw(t *testing.T) {
	var buf syncBuffer
	a := &tableProgress{t: &table{schema: "s", name: "big", estRows: 1000}}
	b := &tableProgress{t: &table{schema: "s", name: "small", estRows: 10}}
	a.chunksLeft.Store(2)
	b.chunksLeft.Store(1)
	p := &progress{tables: []*tableProgress{a, b}, start: time.Now().Add(-time.Second)}
	bars := newBars(&buf, p)
	a.startedNanos.Store(time.Now().UnixNano())
	a.rows.Store(400)
	a.bytes.Store(4 << 20)
	bars.update()
	a.rows.Store(1000)
	a.chunksLeft.Store(0)
	b.startedNanos.Store(time.Now().UnixNano())
	b.rows.Store(10)
	b.chunksLeft.Store(0)
	bars.finish(true)
	out := buf.String()
	for _, want := range []string{"total", "s.big", "2/2 tables", "1010 rows"} {
		if !strings.Contains(out, want) {
			t.Fatalf("bars lack %q:\n%s", want, out)
		}
	}
	if line := p.totals(time.Now()).line(); !strings.Contains(line, "2/2 tables, 1010 of ~1010 rows") {
		t.Fatalf("plain line %q", line)
	}
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}
