package status

import (
	"fmt"
	"time"
)

// ServeReport is the binlog server's part of the report: where it listens
// and the downstream replicas dumping from it.
type ServeReport struct {
	Listen    string `json:"listen"`
	BytesSent uint64 `json:"bytes_sent"`
	// Acks counts the semi-sync ACKs downstream replicas sent.
	Acks uint64 `json:"acks,omitempty"`
	// TLS is what the listener offers: "off", "offered" or "required".
	TLS      string          `json:"tls,omitempty"`
	Replicas []ServedReplica `json:"replicas"`
}

// ServedReplica is one connected downstream replica.
type ServedReplica struct {
	ServerID  uint32    `json:"server_id"`
	Addr      string    `json:"addr"`
	Since     time.Time `json:"since"`
	Mode      string    `json:"mode"`      // gtid or file
	Requested string    `json:"requested"` // its GTID state or file:pos at connect
	SentFile  string    `json:"sent_file"`
	SentPos   uint64    `json:"sent_pos"`
	SentGTID  string    `json:"sent_gtid"` // last GTID sent whole, per domain
	Segment   uint64    `json:"relay_segment"`
	BytesSent uint64    `json:"bytes_sent"`
	CaughtUp  bool      `json:"caught_up"`
	// Encrypted says the replica's connection runs over TLS, with
	// TLSVersion ("TLS 1.3") and TLSCipher.
	Encrypted  bool   `json:"encrypted"`
	TLSVersion string `json:"tls_version,omitempty"`
	TLSCipher  string `json:"tls_cipher,omitempty"`
	// SemiSync says the replica asked for semi-sync: every transaction's
	// last event asks it for an ACK. Acks counts them; AckedFile:AckedPos is
	// the last master position it ACKed (informational: the agent does not
	// wait for them).
	SemiSync  bool   `json:"semi_sync,omitempty"`
	Acks      uint64 `json:"acks,omitempty"`
	AckedFile string `json:"acked_file,omitempty"`
	AckedPos  uint64 `json:"acked_pos,omitempty"`
}

// semiSync describes a served replica's semi-sync ACKs ("" without).
func (r ServedReplica) semiSync() string {
	if !r.SemiSync {
		return ""
	}
	if r.Acks == 0 {
		return ", semi-sync, no ACK yet"
	}
	return fmt.Sprintf(", semi-sync, %d ACKs up to %s:%d", r.Acks, r.AckedFile, r.AckedPos)
}

// transport describes a served replica's connection.
func (r ServedReplica) transport() string {
	if !r.Encrypted {
		return "unencrypted"
	}
	return fmt.Sprintf("encrypted %s %s", r.TLSVersion, r.TLSCipher)
}

// serve writes the binlog server's lines.
func (t textView) serve(s ServeReport) {
	t.field("serving:", fmt.Sprintf("%s, %d %s, %s sent, TLS %s", s.Listen, len(s.Replicas), plural(len(s.Replicas), "replica", "replicas"),
		FormatBytes(int64(s.BytesSent)), or(s.TLS, "off")))
	for _, r := range s.Replicas {
		state := "catching up"
		if r.CaughtUp {
			state = "caught up"
		}
		t.field("replica:", fmt.Sprintf("server_id %d at %s (%s from %s), sent %s:%d (GTIDs %s), %s%s, %s, since %s",
			r.ServerID, r.Addr, r.Mode, or(r.Requested, "the beginning"), r.SentFile, r.SentPos, or(r.SentGTID, "none"), state,
			r.semiSync(), r.transport(), t.at(&r.Since)))
	}
}
