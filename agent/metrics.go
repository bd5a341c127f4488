package agent

import (
	"github.com/hotstandby/hotstandby/buildinfo"
	"math"
	"net/http"
	"strconv"
	"strings"

	"github.com/hotstandby/hotstandby/checkpoint"
	"github.com/hotstandby/hotstandby/ingest"
	"github.com/hotstandby/hotstandby/status"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"golang.org/x/sys/unix"
)

// metrics are the agent's Prometheus metrics, on a registry of its own (no
// global state). Figures the status already holds are read from it when
// scraped; latencies are observed where they happen.
type metrics struct {
	reg        *prometheus.Registry
	fsync      prometheus.Histogram
	ackLatency prometheus.Histogram
}

var latencyBuckets = []float64{.00005, .0001, .00025, .0005, .001, .0025, .005, .01, .025, .05, .1, .25, 1}

// newMetrics makes the registry and the latency histograms the receiver
// observes; register adds the figures read from the agent's parts.
func newMetrics() *metrics {
	m := &metrics{reg: prometheus.NewRegistry()}
	m.fsync = prometheus.NewHistogram(prometheus.HistogramOpts{
		Name: "hotstandby_relay_fsync_duration_seconds", Help: "Time to make a batch of relay log writes durable (fdatasync).", Buckets: latencyBuckets})
	m.ackLatency = prometheus.NewHistogram(prometheus.HistogramOpts{
		Name: "hotstandby_semisync_ack_latency_seconds", Help: "Time from receiving a batch that asks for an ACK to sending the ACK (write + fsync + send).", Buckets: latencyBuckets})
	m.reg.MustRegister(m.fsync, m.ackLatency)
	b := buildinfo.Get()
	m.reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "hotstandby_build_info",
		Help:        "1, labelled with the running daemon's build: module version, VCS revision, Go version.",
		ConstLabels: prometheus.Labels{"version": b.Version, "revision": b.Revision, "goversion": b.GoVersion}}, func() float64 { return 1 }))
	return m
}

// register adds the counters and gauges of a's receiver, applier and
// monitor (once they exist).
func (m *metrics) register(a *Agent) {
	st := func() ingest.Status { return a.recv.Status() }
	counter := func(name, help string, f func() float64) {
		m.reg.MustRegister(prometheus.NewCounterFunc(prometheus.CounterOpts{Name: name, Help: help}, f))
	}
	gauge := func(name, help string, f func() float64) {
		m.reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: name, Help: help}, f))
	}
	counter("hotstandby_received_events_total", "Events stored in the relay log.", func() float64 { return float64(st().Events) })
	counter("hotstandby_received_bytes_total", "Bytes of events stored in the relay log.", func() float64 { return float64(st().Bytes) })
	counter("hotstandby_stream_reconnects_total", "Times the stream to the master was re-established after an error.", func() float64 { return float64(st().Reconnects) })
	counter("hotstandby_semisync_acks_total", "Semi-sync ACKs sent to the master.", func() float64 { return float64(a.recv.AckStats().Sent) })
	registerRelayDiskGauges(m.reg, a.cfg.RelayDir())
	gauge("hotstandby_stream_up", "1 while the stream from the master is established.", func() float64 { return b2f(st().State == ingest.StateStreaming) })
	registerPositionGauges(m.reg, "received", func() (string, uint64) { p := st().Received; return p.File, p.Pos })
	registerPositionGauges(m.reg, "acked", func() (string, uint64) { p := st().Acked; return p.File, p.Pos })
	a.mode.registerMetrics(m.reg, st)
	if a.failover != nil {
		role := func() checkpoint.Role { r, _ := a.store.LoadRole(); return r }
		gauge("hotstandby_role_master", "1 once the standby was promoted (role master), 0 as a standby or while promoting.", func() float64 {
			return b2f(role().Role == checkpoint.RoleMaster)
		})
		gauge("hotstandby_failover_epoch", "The failover epoch: the number of promotions recorded.", func() float64 { return float64(role().Epoch) })
		gauge("hotstandby_promotion_lossless", "1 while a promotion now is proven lossless (semi-sync proof), 0 otherwise.", func() float64 {
			if role().Role != checkpoint.RoleStandby {
				return 0
			}
			ok, _ := a.failover.promoter.Gate.Lossless()
			return b2f(ok)
		})
		if d := a.failover.detector; d != nil {
			gauge("hotstandby_master_declared_dead", "1 while the detector holds the master dead (probe, stream and witness agree).", func() float64 { return b2f(d.View().Dead) })
			gauge("hotstandby_master_probe_failures", "Failed probes of the master in a row.", func() float64 { return float64(d.View().Failures) })
		}
	}
	m.reg.MustRegister(errorsCollector{a})
	gauge("hotstandby_master_semisync_up", "1 while the master reports Rpl_semi_sync_master_status=ON, 0 when it fell back to asynchronous; NaN when unknown.", func() float64 {
		switch a.monitor.View().SemiSync {
		case "ON":
			return 1
		case "OFF":
			return 0
		}
		return math.NaN()
	})
}

// registerRelayDiskGauges adds the relay log's size and the free and total
// space of the filesystem that holds it (statfs at each scrape; NaN when it
// fails). A full relay disk stops the ACKs, so the master waits and then
// commits without them: alert before it is full.
func registerRelayDiskGauges(reg *prometheus.Registry, dir string) {
	fs := func(f func(st *unix.Statfs_t, bs float64) float64) func() float64 {
		return func() float64 {
			var st unix.Statfs_t
			if err := unix.Statfs(dir, &st); err != nil {
				return math.NaN()
			}
			bs := float64(st.Frsize)
			if bs == 0 {
				bs = float64(st.Bsize)
			}
			return f(&st, bs)
		}
	}
	reg.MustRegister(
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "hotstandby_relay_filesystem_avail_bytes",
			Help: "Space available to the agent on the filesystem of the relay log (statfs f_bavail); NaN when unknown."},
			fs(func(st *unix.Statfs_t, bs float64) float64 { return float64(st.Bavail) * bs })),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "hotstandby_relay_filesystem_size_bytes",
			Help: "Size of the filesystem of the relay log (statfs f_blocks); NaN when unknown."},
			fs(func(st *unix.Statfs_t, bs float64) float64 { return float64(st.Blocks) * bs })),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "hotstandby_relay_bytes",
			Help: "Disk space the relay log's segments take, the live segment's preallocated tail included; NaN when unknown."},
			func() float64 {
				if r := status.RelayUsage(dir); r != nil {
					return float64(r.Bytes)
				}
				return math.NaN()
			}),
	)
}

// registerPositionGauges adds the gauges of one frontier's master binlog
// file number and offset.
func registerPositionGauges(reg *prometheus.Registry, name string, pos func() (string, uint64)) {
	gauge := func(name, help string, f func() float64) {
		reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: name, Help: help}, f))
	}
	gauge("hotstandby_"+name+"_binlog_file_number", "Numeric suffix of the master binlog file of the "+name+" frontier; NaN when unknown.", func() float64 {
		file, _ := pos()
		i := strings.LastIndexByte(file, '.')
		n, err := strconv.ParseUint(file[i+1:], 10, 64)
		if file == "" || err != nil {
			return math.NaN()
		}
		return float64(n)
	})
	gauge("hotstandby_"+name+"_binlog_offset_bytes", "Offset in that master binlog file of the "+name+" frontier; NaN when unknown.", func() float64 {
		file, off := pos()
		if file == "" {
			return math.NaN()
		}
		return float64(off)
	})
}

func b2f(b bool) float64 {
	if b {
		return 1
	}
	return 0
}

func (m *metrics) handler() http.Handler {
	return promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{})
}

// serveHealthz is liveness: the daemon answers.
func (a *Agent) serveHealthz(w http.ResponseWriter, r *http.Request) {
	w.Write([]byte("ok\n"))
}

// serveReadyz is readiness: streaming, and the applier (if any) healthy.
func (a *Agent) serveReadyz(w http.ResponseWriter, r *http.Request) {
	rep := a.liveReport()
	switch {
	case rep.Stream.State != ingest.StateStreaming:
		http.Error(w, "stream "+rep.Stream.State+": "+rep.Stream.LastError, http.StatusServiceUnavailable)
	case rep.Applier != nil && rep.Applier.State == "error":
		http.Error(w, "applier stopped: "+rep.Applier.LastError, http.StatusServiceUnavailable)
	default:
		w.Write([]byte("ready\n"))
	}
}

// errorsCollector exports hotstandby_errors_total by kind.
type errorsCollector struct{ a *Agent }

var errorsDesc = prometheus.NewDesc("hotstandby_errors_total",
	"Errors by kind: stream (connection to the master lost), checksum (event damaged on the wire), apply (the applier stopped), standby (connection to the standby lost).",
	[]string{"kind"}, nil)

func (c errorsCollector) Describe(ch chan<- *prometheus.Desc) { ch <- errorsDesc }

func (c errorsCollector) Collect(ch chan<- prometheus.Metric) {
	st := c.a.recv.Status()
	ch <- prometheus.MustNewConstMetric(errorsDesc, prometheus.CounterValue, float64(st.Reconnects), "stream")
	ch <- prometheus.MustNewConstMetric(errorsDesc, prometheus.CounterValue, float64(st.ChecksumErrors), "checksum")
	c.a.mode.collectErrors(ch)
}
