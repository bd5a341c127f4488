// Package prometheus holds no code: it is the home of hotstandby's
// Prometheus alert rules (hotstandby-rules.yml) and their promtool unit
// tests (hotstandby-rules.test.yml), and of the Go test that runs promtool on
// them in `make test`.
//
// Invariants the tests keep:
//   - the rules pass `promtool check rules`, and `promtool test rules` passes
//     with, for every alert, a case where it fires and one where it stays
//     quiet;
//   - every alert has a severity (critical or warning), a summary, a
//     description, and a runbook_url whose anchor is a heading of
//     docs/operations.md;
//   - every metric the rules name is one a running agent exports
//     (agent/alertrules_test.go scrapes a real daemon), except `up`, which
//     is Prometheus's own.
package prometheus
