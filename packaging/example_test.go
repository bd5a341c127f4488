package packaging_test

import (
	"encoding/json"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"slices"
	"sort"
	"strings"
	"testing"

	"github.com/BurntSushi/toml"

	"github.com/hotstandby/hotstandby/agent"
	"github.com/hotstandby/hotstandby/packaging"
)

// writeExample puts the example in a directory with the password files it
// names (relative to it, as they are in /etc/hotstandby).
func writeExample(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	path := filepath.Join(dir, "hotstandby.toml")
	for name, body := range map[string]string{"hotstandby.toml": packaging.ExampleConfig, "master.pw": "m-secret\n", "standby.pw": "s-secret\n"} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	return path
}

// The example loads with the agent's own parser, and every value it sets
// is the default except the ones a DBA must choose (its comments say
// "(default)": that must be true).
func TestExampleLoads(t *testing.T) {
	path := writeExample(t)
	got, err := agent.LoadConfig(path)
	if err != nil {
		t.Fatalf("the example does not load: %v", err)
	}
	if got.MasterPassword() != "m-secret" {
		t.Fatalf("master password not read from master.pw beside the file")
	}
	want := agent.DefaultConfig()
	dir := filepath.Dir(path)
	want.DataDir, want.ServerID = "/var/lib/hotstandby", 4242
	want.Master.Host, want.Master.User, want.Master.PasswordFile = "192.0.2.10", "hotstandby", filepath.Join(dir, "master.pw")
	want.Standby.Host, want.Standby.User, want.Standby.PasswordFile, want.Standby.Mode = "127.0.0.1", "hotstandby", filepath.Join(dir, "standby.pw"), agent.ModeReplica
	f := &want.Failover
	f.Witness, f.PrePromote, f.PostPromote, f.Alert, f.Stonith = []string{}, []string{}, []string{}, []string{}, []string{}
	if f.StreamSilence.Duration != 0 || want.Rejoin.CatchUpTimeout.Duration != 0 {
		t.Fatal("a default changed: stream_silence and catch_up_timeout are 0s (meaning: derived) in the example")
	}
	gj, _ := json.MarshalIndent(got, "", " ")
	wj, _ := json.MarshalIndent(want, "", " ")
	if string(gj) != string(wj) {
		t.Errorf("the example's values are not the defaults it claims:\n got %s\nwant %s", gj, wj)
	}
	if got.ApplyMode() != agent.ModeReplica || got.Failover.Mode != "manual" || !got.SemiSync.Enabled {
		t.Errorf("apply mode %s, failover %s, semisync %v", got.ApplyMode(), got.Failover.Mode, got.SemiSync.Enabled)
	}
}

// commented are the options the example shows commented out: a password
// belongs in a file, and report_host's default is computed.
var commented = []string{"report_host", "master.password", "standby.password", "serve.password"}

// Every option of agent.Config is in the example, set or (for the few
// above) commented out with its key; nothing else is.
func TestExampleNamesEveryOption(t *testing.T) {
	all := tomlKeys(reflect.TypeOf(agent.Config{}), "")
	var cfg agent.Config
	md, err := toml.Decode(packaging.ExampleConfig, &cfg)
	if err != nil {
		t.Fatal(err)
	}
	set := map[string]bool{}
	for _, k := range md.Keys() {
		set[k.String()] = true
	}
	for _, k := range commented {
		section, key, ok := strings.Cut(k, ".")
		if !ok {
			section, key = "", k
		}
		if !regexp.MustCompile(`(?m)^# ` + key + ` = `).MatchString(sectionText(packaging.ExampleConfig, section)) {
			t.Errorf("%s: not shown commented out (# %s = ...) in its section", k, key)
		}
		set[k] = true
	}
	sections := sectionNames(all)
	var missing, extra []string
	for _, k := range all {
		if !set[k] {
			missing = append(missing, k)
		}
	}
	for k := range set {
		if _, isSection := sections[k]; !isSection && !slices.Contains(all, k) {
			extra = append(extra, k)
		}
	}
	sort.Strings(extra)
	if len(missing) > 0 {
		t.Errorf("options missing from packaging/hotstandby.toml (document them there): %v", missing)
	}
	if len(extra) > 0 {
		t.Errorf("keys in the example that the configuration does not have: %v", extra)
	}
	if len(all) < 60 {
		t.Errorf("only %d options found in agent.Config: the walk is broken", len(all))
	}
}

// tomlKeys lists the dotted keys of a struct's toml tags; an embedded
// struct without a tag is flattened, as the decoder does.
func tomlKeys(t reflect.Type, prefix string) []string {
	var keys []string
	for i := 0; i < t.NumField(); i++ {
		f := t.Field(i)
		if !f.IsExported() {
			continue
		}
		tag := strings.Split(f.Tag.Get("toml"), ",")[0]
		if f.Anonymous && tag == "" {
			keys = append(keys, tomlKeys(f.Type, prefix)...)
			continue
		}
		if tag == "" || tag == "-" {
			continue
		}
		name := prefix + tag
		if _, text := reflect.PointerTo(f.Type).MethodByName("UnmarshalText"); f.Type.Kind() == reflect.Struct && !text {
			keys = append(keys, tomlKeys(f.Type, name+".")...)
			continue
		}
		keys = append(keys, name)
	}
	return keys
}

func sectionNames(keys []string) map[string]struct{} {
	m := map[string]struct{}{}
	for _, k := range keys {
		if s, _, ok := strings.Cut(k, "."); ok {
			m[s] = struct{}{}
		}
	}
	return m
}

// sectionText is the text of [section] up to the next section; "" is the
// top of the file.
func sectionText(doc, section string) string {
	start := 0
	if section != "" {
		i := strings.Index(doc, "\n["+section+"]\n")
		if i < 0 {
			return ""
		}
		start = i + 1
	}
	rest := doc[start+1:]
	if j := regexp.MustCompile(`(?m)^\[`).FindStringIndex(rest); j != nil {
		return doc[start : start+1+j[0]]
	}
	return doc[start:]
}
