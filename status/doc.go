// Package status is what `hotstandby status` shows: the Report (JSON schema
// v1, docs/status-json.md), its text for a person (WriteText: human sizes,
// local times with their age, lines within 100 columns), and the judgement
// of `status --check` (monitoring-plugin exit codes).
//
// A report comes from the running daemon's loopback endpoint (Fetch) or,
// when the daemon is stopped, from its checkpoint store and relay log
// (Stored); Get tries the first and falls back to the second, and the
// report says which (daemon: running or stopped).
//
// Every figure is named for what it measures; an unknown one is omitted (or
// NaN in metrics), never shown as 0. The package reads the store and the
// relay log only; it links no daemon code.
package status
