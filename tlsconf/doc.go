// Package tlsconf turns the agent's TLS settings for one server (the
// `tls`, `ca_file`, `cert_file`, `key_file` and `server_name` keys of
// [master] or [standby]) into a *tls.Config for both MySQL drivers the agent
// uses (go-sql-driver and go-mysql), and builds the server-side config of the
// binlog server's listener.
//
// # Levels
//
//   - off: plain TCP. Anyone on the path reads the binlog and can change it.
//   - preferred: TLS when the server offers it, plain when it does not. The
//     certificate is not checked. Protects against passive eavesdropping
//     only when the server has TLS; an active attacker can strip it.
//   - required: TLS or refuse. The certificate is not checked: protects
//     against eavesdropping, not against a man in the middle.
//   - verify-ca: TLS, and the certificate must be signed by ca_file (the
//     host name is not checked). Protects against a man in the middle who
//     has no certificate from that CA.
//   - verify-full: verify-ca, and the certificate must name the server
//     (server_name, else the configured host) in its subject alternative
//     names. The only level that protects against a server impersonated with
//     another certificate from the same CA.
//
// Preferred falls back to plain only when the server's greeting does not
// offer TLS; a failed handshake or a failed verification is never retried in
// plain text.
//
// # Defaults
//
// With `tls` unset: preferred for a loopback host (127.0.0.0/8, ::1,
// localhost); verify-full for any other host when ca_file is given; and for
// another host without ca_file, required (encrypted, not verified) with a
// warning that says so: the binlog never crosses a network in clear text
// unless `tls = "off"` says it may.
//
// # Listener
//
// ServerConfig loads the certificate and key of a TLS listener (the binlog
// server's `[serve] cert_file`/`key_file`), so that a downstream replica can
// use MASTER_SSL=1 with MASTER_SSL_VERIFY_SERVER_CERT=1.
//
// // # Observations
//
// Every *tls.Config that Client.Config returns records each handshake it
// completes (version, cipher, whether the chain was verified, the server
// certificate's expiry) in the Observer it was given; status reads them.
// Observer methods may be called from any goroutine.
package tlsconf
