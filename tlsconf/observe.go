package tlsconf

import (
	"crypto/tls"
	"sync"
	"time"
)

// ExpiryWarning is how close to its expiry a server certificate is reported.
const ExpiryWarning = 14 * 24 * time.Hour

// Observation is what the last handshake of one kind of connection showed.
type Observation struct {
	At        time.Time // zero: no connection seen yet
	Encrypted bool
	Version   string // "TLS 1.3"
	Cipher    string // "TLS_AES_128_GCM_SHA256"
	// Verified is true when the server's certificate chain was checked
	// against ca_file (verify-ca, verify-full).
	Verified bool
	// NotAfter is the server certificate's expiry (zero when plain).
	NotAfter time.Time
	Subject  string
}

// ExpiresSoon reports whether the certificate expires within ExpiryWarning of now.
func (o Observation) ExpiresSoon(now time.Time) bool {
	return o.Encrypted && !o.NotAfter.IsZero() && o.NotAfter.Sub(now) < ExpiryWarning
}

// Observer keeps the last Observation of one kind of connection. A nil
// *Observer records nothing.
type Observer struct {
	mu   sync.Mutex // mu guards the field below
	last Observation
}

func (o *Observer) record(cs tls.ConnectionState, verified bool) {
	if o == nil {
		return
	}
	ob := Observation{At: time.Now(), Encrypted: true, Version: tls.VersionName(cs.Version),
		Cipher: tls.CipherSuiteName(cs.CipherSuite), Verified: verified}
	if len(cs.PeerCertificates) > 0 {
		ob.NotAfter, ob.Subject = cs.PeerCertificates[0].NotAfter, cs.PeerCertificates[0].Subject.String()
	}
	o.mu.Lock()
	o.last = ob
	o.mu.Unlock()
}

// RecordPlain records a connection made without TLS.
func (o *Observer) RecordPlain() {
	if o == nil {
		return
	}
	o.mu.Lock()
	o.last = Observation{At: time.Now()}
	o.mu.Unlock()
}

// Last returns the last observation (zero At when none).
func (o *Observer) Last() Observation {
	if o == nil {
		return Observation{}
	}
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.last
}
