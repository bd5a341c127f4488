package buildinfo

import (
	"runtime/debug"
	"testing"
)

func stamped(version string, settings ...string) *debug.BuildInfo {
	bi := &debug.BuildInfo{GoVersion: "go1.26.8", Main: debug.Module{Version: version}}
	for i := 0; i+1 < len(settings); i += 2 {
		bi.Settings = append(bi.Settings, debug.BuildSetting{Key: settings[i], Value: settings[i+1]})
	}
	return bi
}

func TestGet(t *testing.T) {
	defer func(v, r, tm, m string) { Version, Revision, Time, Modified = v, r, tm, m }(Version, Revision, Time, Modified)
	Version, Revision, Time, Modified = "", "", "", ""

	// What the toolchain stamps in a git clone.
	in := get(stamped("v0.0.0-20261207150326-7bf3f8574aa6", "vcs.revision", "7bf3f8574aa673720a2e8d9f73bab2d35f2ffd2f", "vcs.time", "2026-12-07T15:03:26Z", "vcs.modified", "false"))
	if in.Version != "v0.0.0-20261207150326-7bf3f8574aa6" || in.Revision != "7bf3f8574aa673720a2e8d9f73bab2d35f2ffd2f" || in.Time != "2026-12-07T15:03:26Z" || in.Modified || in.GoVersion != "go1.26.8" {
		t.Errorf("stamped: %+v", in)
	}
	if s := in.String(); s != "v0.0.0-20261207150326-7bf3f8574aa6 (7bf3f8574aa6, go1.26.8)" {
		t.Errorf("String: %s", s)
	}
	// Uncommitted changes: said, once.
	if in := get(stamped("v0.0.0-20261207150326-7bf3f8574aa6+dirty", "vcs.revision", "abc", "vcs.modified", "true")); !in.Modified || in.Version != "v0.0.0-20261207150326-7bf3f8574aa6+dirty" {
		t.Errorf("dirty: %+v", in)
	}
	// Nothing stamped, no fallback: unknown, never empty.
	if in := get(stamped("(devel)")); in.Version != "(devel)" || in.Revision != "unknown" || in.Time != "unknown" || in.Modified {
		t.Errorf("unstamped: %+v", in)
	}
	if in := get(nil); in.Version != "(devel)" || in.GoVersion == "" {
		t.Errorf("no build info: %+v", in)
	}
	// A worktree build: make's -X fallbacks fill in what Go could not.
	Version, Revision, Time, Modified = "v0.0.0-20261207150326-7bf3f8574aa6", "7bf3f85", "2026-12-07T15:03:26Z", "true"
	if in := get(stamped("(devel)")); in.Version != "v0.0.0-20261207150326-7bf3f8574aa6+dirty" || in.Revision != "7bf3f85" || !in.Modified {
		t.Errorf("fallback: %+v", in)
	}
	// The toolchain's stamps win over the fallbacks.
	if in := get(stamped("v1.2.3", "vcs.revision", "def", "vcs.time", "2027-01-01T00:00:00Z", "vcs.modified", "false")); in.Version != "v1.2.3" || in.Revision != "def" || in.Modified {
		t.Errorf("stamps over fallback: %+v", in)
	}
}
