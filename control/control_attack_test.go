package control

import (
	"net"
	"strings"
	"testing"
	"time"
)

// TestControlSilentClientsDoNotBlockOthers: clients that connect and never
// send (or send half a request) hold only their own connection; an
// operator's request is answered meanwhile, and the silent ones are cut
// off at ReadTimeout with the reason.
func TestControlSilentClientsDoNotBlockOthers(t *testing.T) {
	s, calls, _ := serve(t, t.TempDir(), Config{ReadTimeout: time.Hour})
	var silent []net.Conn
	for i := 0; i < 20; i++ {
		c, err := net.Dial("unix", s.Addr())
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		if i%2 == 1 {
			_, _ = c.Write([]byte(`{"op":"who`)) // half a request, no newline
		}
		silent = append(silent, c)
	}
	msg, err := call(t, s.Addr(), Request{Op: "whoami"})
	if err != nil || !strings.HasPrefix(msg, "uid ") || calls.Load() != 1 {
		t.Fatalf("whoami beside %d silent clients = %q, %v (calls %d)", len(silent), msg, err, calls.Load())
	}
}

// TestControlSilentClientCutOff: a client that never sends gets the
// reason at ReadTimeout and its connection ends; no op runs.
func TestControlSilentClientCutOff(t *testing.T) {
	s, calls, _ := serve(t, t.TempDir(), Config{ReadTimeout: 100 * time.Millisecond})
	c, err := net.Dial("unix", s.Addr())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_ = c.SetReadDeadline(time.Now().Add(30 * time.Second))
	buf := make([]byte, 4096)
	n, _ := c.Read(buf)
	if got := string(buf[:n]); !strings.Contains(got, "none within") || calls.Load() != 0 {
		t.Fatalf("silent client got %q (calls %d), want the read timeout's reason and no op", got, calls.Load())
	}
}
