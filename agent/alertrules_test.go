package agent

import (
	"encoding/json"
	"regexp"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/hotstandby/hotstandby/harness"
	"github.com/hotstandby/hotstandby/ingest"
)

// pendingMetrics are named by the alert rules or the dashboard but exported
// by work not merged yet; each says whose.
var pendingMetrics = map[string]string{
	"hotstandby_pair_protected": "the re-arm work of issue 18 (1 while a standby protects the pair's master)",
}

var metricName = regexp.MustCompile(`\b(up|hotstandby_[a-z0-9_]+)\b`)

// monitoredMetrics returns the metric names in the expressions of the alert
// rules (packaging/prometheus) and the queries of the dashboard
// (packaging/grafana), each with where it is used.
func monitoredMetrics(t *testing.T) map[string]string {
	t.Helper()
	out := map[string]string{}
	rules := readFile(t, "../packaging/prometheus/hotstandby-rules.yml")
	for _, l := range strings.Split(rules, "\n") {
		if e, ok := strings.CutPrefix(strings.TrimSpace(l), "expr: "); ok {
			for _, m := range metricName.FindAllString(e, -1) {
				out[m] = "packaging/prometheus/hotstandby-rules.yml"
			}
		}
	}
	var exprs []string
	var walk func(v any)
	walk = func(v any) {
		switch v := v.(type) {
		case map[string]any:
			for k, x := range v {
				if s, ok := x.(string); ok && k == "expr" {
					exprs = append(exprs, s)
				}
				walk(x)
			}
		case []any:
			for _, x := range v {
				walk(x)
			}
		}
	}
	var dash any
	if err := json.Unmarshal([]byte(readFile(t, "../packaging/grafana/hotstandby.json")), &dash); err != nil {
		t.Fatal(err)
	}
	walk(dash)
	if len(exprs) == 0 {
		t.Fatal("no query in the dashboard")
	}
	for _, e := range exprs {
		for _, m := range metricName.FindAllString(e, -1) {
			out[m] = "packaging/grafana/hotstandby.json"
		}
	}
	return out
}

// TestAlertAndDashboardMetricsAreExported: every metric the alert rules and
// the dashboard name is one a running agent exports, in replica or in direct
// mode (with a standby, so with the failover detector), so no alert waits
// for a series that never comes. A histogram counts under its _bucket, _sum
// and _count names; `up` is Prometheus's own.
func TestAlertAndDashboardMetricsAreExported(t *testing.T) {
	want := monitoredMetrics(t)
	exported := map[string]bool{}
	for _, mode := range []string{ModeReplica, ModeDirect} {
		t.Run(mode, func(t *testing.T) {
			e := newEnv(t)
			e.withStandbyMode(mode)
			e.startInProcess(ingest.Hooks{})
			e.waitSemiSyncClient()
			addr := e.config().Status.Listen
			// The applier's gauges are there from the start; wait for the
			// stream so the scrape is a working agent's.
			harness.WaitFor(t, "the stream to be up", 30*time.Second, func() bool {
				return value(t, scrape(t, addr), "hotstandby_stream_up") == 1
			})
			for name, f := range scrape(t, addr) {
				exported[name] = true
				if f.GetType().String() == "HISTOGRAM" {
					for _, s := range []string{"_bucket", "_sum", "_count"} {
						exported[name+s] = true
					}
				}
			}
		})
	}
	if t.Failed() {
		return
	}
	var missing []string
	for m, where := range want {
		switch {
		case m == "up" || exported[m] && pendingMetrics[m] == "":
		case exported[m]:
			t.Logf("%s is exported now: remove it from pendingMetrics", m)
		case pendingMetrics[m] != "":
			t.Logf("%s (%s) is not exported yet: it comes with %s", m, where, pendingMetrics[m])
		default:
			missing = append(missing, m+" ("+where+")")
		}
	}
	sort.Strings(missing)
	if len(missing) > 0 {
		t.Errorf("metrics named by the alert rules or the dashboard that no running agent exports:\n  %s", strings.Join(missing, "\n  "))
	}
}
