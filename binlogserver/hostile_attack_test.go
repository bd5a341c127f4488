package binlogserver

import (
	"encoding/binary"
	"strings"
	"testing"
	"time"

	"github.com/go-mysql-org/go-mysql/client"
)

// rawCommand sends one command packet as sequence 0 and returns the first
// packet of the answer (nil when the server closed the connection).
func rawCommand(t *testing.T, c *client.Conn, body []byte) []byte {
	t.Helper()
	c.ResetSequence()
	hdr := []byte{byte(len(body)), byte(len(body) >> 8), byte(len(body) >> 16), 0}
	if _, err := c.Conn.Conn.Write(append(hdr, body...)); err != nil {
		return nil
	}
	_ = c.Conn.Conn.SetReadDeadline(time.Now().Add(30 * time.Second))
	c.Sequence = 1
	got, err := c.ReadPacket()
	if err != nil {
		return nil
	}
	return got
}

func dumpPacket(file string, pos uint32) []byte {
	b := []byte{0x12}
	b = binary.LittleEndian.AppendUint32(b, pos)
	b = binary.LittleEndian.AppendUint16(b, 0)
	b = binary.LittleEndian.AppendUint32(b, 77)
	return append(b, file...)
}

// TestHostileCommandsAfterLogin: a logged-in client sends a dump of a
// file name of nearly 1 MiB, one that climbs out of the relay directory,
// a GTID state that does not parse, and a COM_REGISTER_SLAVE of garbage.
// Each gets an error (or the end of its connection), nothing panics, no
// file outside the relay log is read, and the server goes on serving.
func TestHostileCommandsAfterLogin(t *testing.T) {
	f := newRelayFixture(t, 2, 3)
	f.durableAt(6)
	tests := []struct {
		name  string
		setup string // a query first
		body  []byte
	}{
		{"huge file name", "", dumpPacket(strings.Repeat("m", maxCommandPacket-11), 4)},
		{"file outside the relay log", "", dumpPacket("../../../../etc/passwd", 4)},
		{"file name with NUL", "", dumpPacket("mysql-bin.000001\x00x", 4)},
		{"position past the file", "", dumpPacket("mysql-bin.000001", 0xffffffff)},
		{"garbage GTID state", "SET @slave_connect_state='0-1-x,,-9-'", dumpPacket("", 4)},
		{"register garbage", "", append([]byte{0x15}, []byte{0xff, 0xff, 0xff, 0xff, 200, 1, 2, 3}...)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := client.ConnectWithTimeout(f.srv.Addr(), "downstream", f.pw, "", 30*time.Second)
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			if tt.setup != "" {
				_, _ = c.Execute(tt.setup)
			}
			got := rawCommand(t, c, tt.body)
			if len(got) > 0 && got[0] != 0xff && tt.body[0] == 0x12 {
				t.Fatalf("dump answered %x..., want an error", got[:min(len(got), 16)])
			}
			if strings.Contains(string(got), "root:") {
				t.Fatalf("a file outside the relay log was read: %q", got)
			}
			if n := f.srv.Stats().Panics; n != 0 {
				t.Fatalf("%d handlers panicked", n)
			}
			c2, err := client.ConnectWithTimeout(f.srv.Addr(), "downstream", f.pw, "", 30*time.Second)
			if err != nil {
				t.Fatalf("the server no longer serves: %v", err)
			}
			if _, err := c2.Execute("SELECT @@version"); err != nil {
				t.Fatalf("the server no longer answers: %v", err)
			}
			c2.Close()
		})
	}
}
