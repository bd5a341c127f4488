package status

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"
	"time"
)

func TestServeInReport(t *testing.T) {
	since := time.Date(2026, 12, 2, 1, 0, 0, 0, time.UTC)
	rep := Report{Daemon: "running", Role: "standby", Serve: &ServeReport{Listen: "127.0.0.1:3307", BytesSent: 2048, Replicas: []ServedReplica{{
		ServerID: 31, Addr: "127.0.0.1:5555", Since: since, Mode: "gtid", Requested: "0-1-3",
		SentFile: "mysql-bin.000002", SentPos: 1234, SentGTID: "0-1-99", Segment: 4, CaughtUp: true,
	}}}}
	var b bytes.Buffer
	rep.WriteText(&b, TextOptions{Now: since.Add(time.Minute)})
	text := b.String()
	for _, want := range []string{"127.0.0.1:3307, 1 replica", "server_id 31 at 127.0.0.1:5555 (gtid from 0-1-3), sent mysql-bin.000002:1234", "0-1-99", "caught up"} {
		if !strings.Contains(text, want) {
			t.Errorf("text lacks %q:\n%s", want, text)
		}
	}
	js, err := json.Marshal(rep)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(js), `"serve":{"listen":"127.0.0.1:3307","bytes_sent":2048,"replicas":[{"server_id":31`) {
		t.Fatalf("JSON: %s", js)
	}
	if js, _ := json.Marshal(Report{}); strings.Contains(string(js), "serve") {
		t.Fatalf("serve is in the JSON of a report without it: %s", js)
	}
}
