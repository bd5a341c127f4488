// Package packaging holds what the Debian package installs beside the
// binary: the commented example configuration (embedded here, printed by
// `hotstandby config example`), the systemd unit, the man page and the
// maintainer scripts; mkdeb.sh assembles them (`make deb`).
//
// Invariant: the example `hotstandby config example` prints, the file the
// package installs as /etc/hotstandby/hotstandby.toml and the file the
// tests load with the agent's own parser are one file, hotstandby.toml; it
// names every option of the configuration (a test compares it with the
// agent's Config).
package packaging

import _ "embed"

// ExampleConfig is hotstandby.toml.
//
//go:embed hotstandby.toml
var ExampleConfig string
