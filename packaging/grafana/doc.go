// Package grafana holds no code: it is the home of hotstandby's Grafana
// dashboard (hotstandby.json) and of the test that checks it.
//
// Invariants the tests keep: the dashboard is valid JSON with a uid, every
// panel query is PromQL that promtool accepts (Grafana's variables
// substituted), every panel reads the ${datasource} variable, panel ids are
// unique, and every metric it names is one a running agent exports
// (agent/alertrules_test.go scrapes a real daemon).
package grafana
