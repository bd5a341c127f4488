// Package buildinfo says which build of hotstandby is running: the module
// version, the VCS revision and its date, and the Go version, as the Go
// toolchain stamped them into the binary (runtime/debug.ReadBuildInfo).
//
// Invariant: the figures come from the binary itself, never from a file or
// a flag at run time; the Go toolchain's stamps win, and the link-time
// fallbacks below (set by `make build` and `make deb` with -ldflags -X) only
// fill in what the toolchain could not stamp (a build in a git worktree, or
// with -buildvcs=false). What neither knows is "unknown", never empty.
package buildinfo

import (
	"fmt"
	"runtime"
	"runtime/debug"
	"strings"
)

// Link-time fallbacks: -ldflags "-X github.com/hotstandby/hotstandby/buildinfo.Version=v1.2.3 ...".
var (
	Version  string // module version, as Go spells it (v0.0.0-20261207150326-7bf3f8574aa6)
	Revision string // full commit hash
	Time     string // commit time, RFC 3339
	Modified string // "true" when the tree had uncommitted changes
)

// Info is one build's identity.
type Info struct {
	Version   string `json:"version"`  // module version, or "(devel)"
	Revision  string `json:"revision"` // VCS commit, or "unknown"
	Time      string `json:"time"`     // the commit's time (RFC 3339), or "unknown"
	Modified  bool   `json:"modified"` // built from a tree with uncommitted changes
	GoVersion string `json:"go_version"`
	Platform  string `json:"platform"` // GOOS/GOARCH
}

// Get returns the running binary's build info.
func Get() Info {
	bi, _ := debug.ReadBuildInfo()
	return get(bi)
}

func get(bi *debug.BuildInfo) Info {
	in := Info{GoVersion: runtime.Version(), Platform: runtime.GOOS + "/" + runtime.GOARCH}
	var vcsModified string
	if bi != nil {
		if v := bi.Main.Version; v != "" && v != "(devel)" {
			in.Version = v
		}
		if bi.GoVersion != "" {
			in.GoVersion = bi.GoVersion
		}
		for _, s := range bi.Settings {
			switch s.Key {
			case "vcs.revision":
				in.Revision = s.Value
			case "vcs.time":
				in.Time = s.Value
			case "vcs.modified":
				vcsModified = s.Value
			}
		}
	}
	stamped := in.Revision != ""
	in.Version = first(in.Version, Version, "(devel)")
	in.Revision = first(in.Revision, Revision, "unknown")
	in.Time = first(in.Time, Time, "unknown")
	if stamped {
		in.Modified = vcsModified == "true"
	} else {
		in.Modified = Modified == "true"
	}
	if in.Modified && !strings.HasSuffix(in.Version, "+dirty") && in.Version != "(devel)" {
		in.Version += "+dirty"
	}
	return in
}

func first(vals ...string) string {
	for _, v := range vals {
		if v != "" {
			return v
		}
	}
	return ""
}

// String is the one-line form for a log line: "v1.2.3 (7bf3f8574aa6, go1.26.8)".
func (in Info) String() string {
	rev := in.Revision
	if len(rev) > 12 {
		rev = rev[:12]
	}
	return fmt.Sprintf("%s (%s, %s)", in.Version, rev, in.GoVersion)
}
