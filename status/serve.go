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
		t.field("replica:", fmt.Sprintf("server_id %d at %s (%s from %s), sent %s:%d (GTIDs %s), %s, %s, since %s",
			r.ServerID, r.Addr, r.Mode, or(r.Requested, "the beginning"), r.SentFile, r.SentPos, or(r.SentGTID, "none"), state,
			r.transport(), t.at(&r.Since)))
	}
}
