package semisync

import (
	"bytes"
	"errors"
	"testing"

	"github.com/hotstandby/hotstandby/binlog"
)

func TestPacket(t *testing.T) {
	got := Packet(binlog.FilePos{File: "mysql-bin.000002", Pos: 0x0102})
	want := append([]byte{25, 0, 0, 0, 0xef, 0x02, 0x01, 0, 0, 0, 0, 0, 0}, "mysql-bin.000002"...)
	if !bytes.Equal(got, want) {
		t.Fatalf("Packet = % x, want % x", got, want)
	}
}

func TestAckNeverBeyondDurable(t *testing.T) {
	tests := []struct {
		name    string
		durable binlog.FilePos
		ack     binlog.FilePos
		wantErr bool
	}{
		{"nothing durable", binlog.FilePos{}, binlog.FilePos{File: "b.000001", Pos: 100}, true},
		{"equal", binlog.FilePos{File: "b.000001", Pos: 100}, binlog.FilePos{File: "b.000001", Pos: 100}, false},
		{"behind", binlog.FilePos{File: "b.000001", Pos: 100}, binlog.FilePos{File: "b.000001", Pos: 50}, false},
		{"beyond offset", binlog.FilePos{File: "b.000001", Pos: 100}, binlog.FilePos{File: "b.000001", Pos: 101}, true},
		{"beyond file", binlog.FilePos{File: "b.000001", Pos: 100}, binlog.FilePos{File: "b.000002", Pos: 4}, true},
		{"file numbered past 9", binlog.FilePos{File: "b.000010", Pos: 4}, binlog.FilePos{File: "b.000009", Pos: 900}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a := NewAcker(nil)
			a.SetDurable(tt.durable)
			var buf bytes.Buffer
			err := a.Ack(&buf, tt.ack)
			if (err != nil) != tt.wantErr {
				t.Fatalf("Ack err = %v, wantErr %v", err, tt.wantErr)
			}
			if tt.wantErr {
				if !errors.Is(err, ErrAckBeyondDurable) || buf.Len() != 0 || a.Stats().Sent != 0 {
					t.Fatalf("refused ACK wrote %d bytes, err %v", buf.Len(), err)
				}
				return
			}
			if !bytes.Equal(buf.Bytes(), Packet(tt.ack)) || a.Stats().Sent != 1 || a.Stats().Last != tt.ack {
				t.Fatalf("ACK not written as expected: % x, stats %+v", buf.Bytes(), a.Stats())
			}
		})
	}
}
