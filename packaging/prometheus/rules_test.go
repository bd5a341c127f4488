package prometheus

import (
	"bufio"
	"os"
	"os/exec"
	"regexp"
	"strings"
	"testing"
)

const (
	rulesFile = "hotstandby-rules.yml"
	testsFile = "hotstandby-rules.test.yml"
	runbook   = "../../docs/operations.md"
)

// promtool finds promtool, or fails the test with the fix.
func promtool(t *testing.T) string {
	t.Helper()
	p, err := exec.LookPath("promtool")
	if err != nil {
		t.Fatal("promtool not found on PATH: install it with `apt-get install prometheus` (Debian 12 ships /usr/bin/promtool); the alert rules cannot be checked without it")
	}
	return p
}

// TestRulesPassPromtool: the rules are valid (`promtool check rules`) and
// their unit tests pass (`promtool test rules`).
func TestRulesPassPromtool(t *testing.T) {
	bin := promtool(t)
	for _, args := range [][]string{{"check", "rules", rulesFile}, {"test", "rules", testsFile}} {
		out, err := exec.Command(bin, args...).CombinedOutput()
		if err != nil {
			t.Errorf("promtool %s: %v\n%s", strings.Join(args, " "), err, out)
		}
	}
}

type alertRule struct {
	name, severity            string
	summary, desc, runbookURL bool
	anchor                    string
}

// parseAlerts reads the alerts of the rules file, one block per "- alert:"
// (the file is checked by promtool; this reads only what the tests below need).
func parseAlerts(t *testing.T) []alertRule {
	t.Helper()
	f, err := os.Open(rulesFile)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var alerts []alertRule
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if name, ok := strings.CutPrefix(line, "- alert: "); ok {
			alerts = append(alerts, alertRule{name: name})
			continue
		}
		if len(alerts) == 0 {
			continue
		}
		a := &alerts[len(alerts)-1]
		switch {
		case strings.HasPrefix(line, "severity: "):
			a.severity = strings.TrimPrefix(line, "severity: ")
		case strings.HasPrefix(line, "summary: "):
			a.summary = true
		case strings.HasPrefix(line, "description: "):
			a.desc = true
		case strings.HasPrefix(line, "runbook_url: "):
			a.runbookURL = true
			u := strings.Trim(strings.TrimPrefix(line, "runbook_url: "), `"`)
			if _, frag, ok := strings.Cut(u, "docs/operations.md#"); ok {
				a.anchor = frag
			}
		}
	}
	if len(alerts) == 0 {
		t.Fatalf("no alert in %s", rulesFile)
	}
	return alerts
}

// anchors are the GitHub anchors of the runbook's headings.
func anchors(t *testing.T) map[string]bool {
	t.Helper()
	body, err := os.ReadFile(runbook)
	if err != nil {
		t.Fatal(err)
	}
	strip := regexp.MustCompile(`[^a-z0-9 _-]`)
	out := map[string]bool{}
	for _, l := range strings.Split(string(body), "\n") {
		if h, ok := strings.CutPrefix(l, "#"); ok {
			h = strings.TrimSpace(strings.TrimLeft(h, "#"))
			out[strings.ReplaceAll(strip.ReplaceAllString(strings.ToLower(h), ""), " ", "-")] = true
		}
	}
	return out
}

// TestEveryAlertHasSeverityRunbookAndTests: each alert has a severity, a
// summary, a description, a runbook_url that names a section of
// docs/operations.md, and in the promtool tests at least one evaluation where
// it fires and one where it must stay quiet.
func TestEveryAlertHasSeverityRunbookAndTests(t *testing.T) {
	heads := anchors(t)
	tests, err := os.ReadFile(testsFile)
	if err != nil {
		t.Fatal(err)
	}
	// An evaluation is "alertname: X" followed by its exp_alerts: "[]" is
	// a quiet case, a list a firing one.
	fires, quiet := map[string]int{}, map[string]int{}
	lines := strings.Split(string(tests), "\n")
	for i, l := range lines {
		name, ok := strings.CutPrefix(strings.TrimSpace(l), "alertname: ")
		if !ok || i+1 >= len(lines) {
			continue
		}
		switch next := strings.TrimSpace(lines[i+1]); {
		case next == "exp_alerts: []":
			quiet[name]++
		case next == "exp_alerts:":
			fires[name]++
		default:
			t.Errorf("%s: evaluation of %s: want exp_alerts on the next line, got %q", testsFile, name, next)
		}
	}
	seen := map[string]bool{}
	for _, a := range parseAlerts(t) {
		if seen[a.name] {
			t.Errorf("alert %s defined twice", a.name)
		}
		seen[a.name] = true
		if a.severity != "critical" && a.severity != "warning" {
			t.Errorf("alert %s: severity %q, want critical or warning", a.name, a.severity)
		}
		if !a.summary || !a.desc || !a.runbookURL {
			t.Errorf("alert %s: summary %v, description %v, runbook_url %v: want all three", a.name, a.summary, a.desc, a.runbookURL)
		}
		if !heads[a.anchor] {
			t.Errorf("alert %s: runbook_url anchor %q is no heading of %s", a.name, a.anchor, runbook)
		}
		if fires[a.name] == 0 || quiet[a.name] == 0 {
			t.Errorf("alert %s: %d firing and %d quiet evaluations in %s; want at least one of each", a.name, fires[a.name], quiet[a.name], testsFile)
		}
	}
	for name := range fires {
		if !seen[name] {
			t.Errorf("%s tests %s, which is no alert of %s", testsFile, name, rulesFile)
		}
	}
}
