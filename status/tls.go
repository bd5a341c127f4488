package status

import (
	"fmt"
	"time"
)

// TLSReport says how one of the agent's connections is protected, as its
// last TLS handshake showed.
type TLSReport struct {
	// Connection is the server and the kind: "master dump", "master
	// monitor", "master probe", "master sql", "standby applier".
	Connection string `json:"connection"`
	Mode       string `json:"tls_mode"` // the configured level
	Loopback   bool   `json:"loopback"`
	// Seen is false while no connection of this kind has completed a TLS
	// handshake or been recorded as plain.
	Seen      bool   `json:"seen"`
	Encrypted bool   `json:"encrypted"`
	Version   string `json:"tls_version,omitempty"`
	Cipher    string `json:"cipher,omitempty"`
	// Verified is true when the server's certificate was checked against
	// the configured CA (verify-ca, verify-full).
	Verified    bool       `json:"certificate_verified"`
	Subject     string     `json:"certificate_subject,omitempty"`
	NotAfter    *time.Time `json:"certificate_not_after,omitempty"`
	ExpiresSoon bool       `json:"certificate_expires_soon,omitempty"`
}

// text is the connection's line in `status`.
func (r TLSReport) text() string {
	switch {
	case !r.Seen && r.Mode == "preferred":
		return "no TLS handshake seen (tls = preferred: plain text when the server offers no TLS)"
	case !r.Seen:
		return fmt.Sprintf("not connected yet (tls = %s)", r.Mode)
	case !r.Encrypted:
		return fmt.Sprintf("NOT encrypted (tls = %s)", r.Mode)
	}
	s := fmt.Sprintf("encrypted, %s %s, tls = %s, certificate ", r.Version, r.Cipher, r.Mode)
	if r.Verified {
		s += "verified"
	} else {
		s += "not verified"
	}
	if r.NotAfter != nil {
		s += ", expires " + r.NotAfter.UTC().Format(time.RFC3339)
		if r.ExpiresSoon {
			s += " (SOON)"
		}
	}
	return s
}

// tlsFindings are the warnings of `status --check` about TLS: a connection
// to another host in plain text, a certificate that expires within 14 days.
func tlsFindings(rs []TLSReport) []string {
	var out []string
	for _, r := range rs {
		if r.Seen && !r.Encrypted && !r.Loopback {
			out = append(out, fmt.Sprintf("the %s connection is not encrypted and the server is not on this host: set tls", r.Connection))
		}
		if r.Seen && r.ExpiresSoon && r.NotAfter != nil {
			out = append(out, fmt.Sprintf("the %s server's certificate (%s) expires %s", r.Connection, r.Subject, r.NotAfter.UTC().Format(time.RFC3339)))
		}
	}
	return out
}
