package agent

import (
	"context"
	"github.com/hotstandby/hotstandby/buildinfo"
	"io"
	"log/slog"
	"math"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/hotstandby/hotstandby/harness"
	"github.com/hotstandby/hotstandby/ingest"
	"github.com/prometheus/client_golang/prometheus/testutil/promlint"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
)

func scrape(t *testing.T, addr string) map[string]*dto.MetricFamily {
	t.Helper()
	resp, err := http.Get("http://" + addr + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	var p expfmt.TextParser
	fams, err := p.TextToMetricFamilies(strings.NewReader(string(body)))
	if err != nil {
		t.Fatalf("the Prometheus text parser rejects /metrics: %v\n%s", err, body)
	}
	problems, err := promlint.New(strings.NewReader(string(body))).Lint()
	if err != nil {
		t.Fatal(err)
	}
	for _, pr := range problems {
		t.Errorf("metric %s: %s", pr.Metric, pr.Text)
	}
	return fams
}

func value(t *testing.T, fams map[string]*dto.MetricFamily, name string) float64 {
	t.Helper()
	f, ok := fams[name]
	if !ok || len(f.Metric) != 1 {
		t.Fatalf("metric %s missing", name)
	}
	m := f.Metric[0]
	switch {
	case m.Counter != nil:
		return m.Counter.GetValue()
	case m.Gauge != nil:
		return m.Gauge.GetValue()
	case m.Histogram != nil:
		return float64(m.Histogram.GetSampleCount())
	}
	t.Fatalf("metric %s has no value", name)
	return 0
}

// TestMetricsAndHealth: /metrics parses with the Prometheus text parser,
// passes promlint, and its figures agree with the servers; /healthz and
// /readyz answer.
func TestMetricsAndHealth(t *testing.T) {
	e := newEnv(t)
	standby := e.withStandbyMode(ModeDirect) // direct's metrics (applied offsets, apply errors); replica's: TestReplicaModeLoadAndStandbyRestart
	// Unknown is NaN, never 0: an agent that has not connected yet.
	fresh, err := newAgent(e.config(), slog.New(slog.DiscardHandler), ingest.Hooks{})
	if err != nil {
		t.Fatal(err)
	}
	rec := httptest.NewRecorder()
	fresh.metrics.handler().ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
	fresh.store.Close()
	var tp expfmt.TextParser
	ff, err := tp.TextToMetricFamilies(rec.Body)
	if err != nil {
		t.Fatal(err)
	}
	if v := value(t, ff, "hotstandby_received_binlog_offset_bytes"); !math.IsNaN(v) {
		t.Fatalf("received offset before any connection = %v, want NaN (unknown)", v)
	}
	e.startInProcess(ingest.Hooks{})
	e.waitSemiSyncClient()
	yes0 := e.status("Rpl_semi_sync_master_yes_tx")
	if _, err := e.load(context.Background(), 4, 300); err != nil {
		t.Fatal(err)
	}
	e.waitApplied(standby, 30*time.Second)
	addr := e.config().Status.Listen
	fams := scrape(t, addr)
	master := e.masterPos()
	if v := value(t, fams, "hotstandby_received_binlog_offset_bytes"); v != float64(master.Pos) {
		t.Errorf("received offset %v, master at %s", v, master)
	}
	if v := value(t, fams, "hotstandby_applied_binlog_offset_bytes"); v != float64(master.Pos) {
		t.Errorf("applied offset %v, master at %s", v, master)
	}
	if v := value(t, fams, "hotstandby_apply_lag_transactions"); v != 0 {
		t.Errorf("apply lag %v after catching up", v)
	}
	acks := value(t, fams, "hotstandby_semisync_acks_total")
	if yes := float64(e.status("Rpl_semi_sync_master_yes_tx") - yes0); acks < 1 || acks > yes+1 {
		t.Errorf("acks_total %v for %v semi-sync commits", acks, yes)
	}
	if value(t, fams, "hotstandby_relay_fsync_duration_seconds") < 1 || value(t, fams, "hotstandby_semisync_ack_latency_seconds") < 1 {
		t.Error("fsync or ACK latency histograms observed nothing")
	}
	if value(t, fams, "hotstandby_stream_up") != 1 || value(t, fams, "hotstandby_applier_up") != 1 {
		t.Error("stream_up or applier_up is not 1")
	}
	if f := fams["hotstandby_errors_total"]; f == nil || len(f.Metric) != 4 {
		t.Errorf("hotstandby_errors_total by kind: %v", f)
	}
	if f := fams["hotstandby_build_info"]; f == nil || len(f.Metric) != 1 || f.Metric[0].GetGauge().GetValue() != 1 {
		t.Errorf("hotstandby_build_info: %v", f)
	} else {
		labels := map[string]string{}
		for _, l := range f.Metric[0].Label {
			labels[l.GetName()] = l.GetValue()
		}
		if b := buildinfo.Get(); labels["version"] != b.Version || labels["revision"] != b.Revision || labels["goversion"] != b.GoVersion {
			t.Errorf("hotstandby_build_info labels %v, want the build %+v", labels, b)
		}
	}
	harness.WaitFor(t, "the master's semi-sync state in the metrics", 10*time.Second, func() bool {
		return value(t, scrape(t, addr), "hotstandby_master_semisync_up") == 1
	})
	for _, path := range []string{"/healthz", "/readyz"} {
		resp, err := http.Get("http://" + addr + path)
		if err != nil || resp.StatusCode != 200 {
			t.Fatalf("%s: %v %v", path, err, resp)
		}
		resp.Body.Close()
	}
	if v := value(t, fams, "hotstandby_stream_reconnects_total"); v != 0 {
		t.Errorf("reconnects %v", v)
	}
	id, _ := e.master.QueryString(context.Background(), "SELECT id FROM information_schema.processlist WHERE command LIKE 'Binlog Dump%' LIMIT 1")
	e.exec("KILL " + id)
	harness.WaitFor(t, "the reconnect to show in the metrics", 20*time.Second, func() bool {
		return value(t, scrape(t, addr), "hotstandby_stream_reconnects_total") >= 1
	})
	if math.IsNaN(value(t, fams, "hotstandby_acked_binlog_file_number")) {
		t.Error("acked file number unknown after ACKs")
	}
}
