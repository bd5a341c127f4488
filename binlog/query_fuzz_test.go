package binlog

import (
	"bytes"
	"encoding/binary"
	"errors"
	"testing"
)

// FuzzParseQuery feeds ParseQuery the Query events captured from MariaDB
// 10.11 and hand-built ones, mutated. It must never panic; it either
// fails with one of its documented errors or returns a statement and a
// default database that are the event's last bytes.
func FuzzParseQuery(f *testing.F) {
	for _, ev := range readCaptures(f) {
		f.Add(ev, true)
		f.Add(ev[:len(ev)-4], false) // the same bytes read as unchecksummed
	}
	for _, status := range [][]byte{
		nil,
		sv(QUpdatedDBNames, 2, 'a', 0, 'b', 0),
		sv(QUpdatedDBNames, 254),
		sv(QGTIDFlags3, AlterCommit, 1, 2, 3, 4, 5, 6, 7, 8),
		sv(QInvoker, 1, 'u', 1, 'h'),
		sv(QCatalogCode, 3, 's', 't', 'd', 0),
		sv(QExplicitDefaultsForTimestamp, 1),
		sv(131, 0),
	} {
		f.Add(buildQuery(status, "db", "SELECT 1", 0, true), true)
	}
	f.Fuzz(func(t *testing.T, ev []byte, crc bool) {
		checkParseQuery(t, ev, crc)
		if len(ev) >= HeaderLen {
			// Most mutations change the length: mend the header's size so
			// they reach the status variables too.
			fixed := bytes.Clone(ev)
			binary.LittleEndian.PutUint32(fixed[9:], uint32(len(fixed)))
			checkParseQuery(t, fixed, crc)
		}
	})
}

// checkParseQuery parses ev and checks what FuzzParseQuery promises.
func checkParseQuery(t *testing.T, ev []byte, crc bool) {
	q, err := ParseQuery(ev, crc)
	if err != nil {
		if !errors.Is(err, ErrShortEvent) && !errors.Is(err, ErrBadEvent) && !errors.Is(err, ErrUnknownStatusVar) {
			t.Fatalf("ParseQuery: undocumented error %v", err)
		}
		var se *StatusVarError
		if errors.As(err, &se) && (se.Offset < HeaderLen+queryPostHeaderLen || se.Offset >= len(ev)) {
			t.Fatalf("status variable error at byte %d of a %d-byte event: %v", se.Offset, len(ev), err)
		}
		return
	}
	end := len(ev)
	if crc {
		end -= 4
	}
	tail := append(append([]byte(q.DB), 0), q.Text...)
	if !bytes.HasSuffix(ev[:end], tail) {
		t.Fatalf("db %q and text %q are not the end of the event", q.DB, q.Text)
	}
	for _, c := range q.Codes {
		if lookupStatusVar(c) == nil {
			t.Fatalf("decoded unknown code %d", c)
		}
	}
	again, err := ParseQuery(ev, crc)
	if err != nil || again.Text != q.Text || len(again.Codes) != len(q.Codes) {
		t.Fatalf("second parse differs: %v", err)
	}
}
