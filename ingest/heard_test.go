package ingest

import (
	"testing"
	"time"
)

// TestHeardBook: B's stream terms. The last packet moves with every
// packet; an ACK request keeps B at its receipt until an ACK answers it;
// requests a connection left unanswered stay pending on the next one until
// that connection has answered everything it was asked.
func TestHeardBook(t *testing.T) {
	t0 := time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC)
	at := func(s int) time.Time { return t0.Add(time.Duration(s) * time.Second) }
	var h heardBook
	if v := h.view(); !v.Packet.IsZero() || !v.AckPending.IsZero() {
		t.Fatalf("fresh book: %+v", v)
	}
	h.newConnection()
	h.readPacket(at(1), false)
	h.readPacket(at(2), true)
	h.readPacket(at(3), true)
	h.readPacket(at(4), false)
	if v := h.view(); !v.Packet.Equal(at(4)) || !v.AckPending.Equal(at(2)) {
		t.Fatalf("two requests read: %+v", v)
	}
	h.acked(1) // the writer answered the first request
	if v := h.view(); !v.AckPending.Equal(at(3)) {
		t.Fatalf("one answered: pending %v, want %v", v.AckPending, at(3))
	}
	h.acked(2)
	if v := h.view(); !v.AckPending.IsZero() {
		t.Fatalf("all answered: pending %v", v.AckPending)
	}
	h.readPacket(at(5), true) // read, never answered: the connection ends
	h.newConnection()
	h.readPacket(at(6), true)
	if v := h.view(); !v.AckPending.Equal(at(5)) {
		t.Fatalf("carried from the last connection: pending %v, want %v", v.AckPending, at(5))
	}
	h.readPacket(at(7), true)
	h.acked(1)
	if v := h.view(); !v.AckPending.Equal(at(5)) {
		t.Fatalf("the new connection has one unanswered: pending %v, want the carried %v", v.AckPending, at(5))
	}
	h.acked(2)
	if v := h.view(); !v.AckPending.IsZero() || !v.Packet.Equal(at(7)) {
		t.Fatalf("the new connection answered all: %+v", v)
	}
}
