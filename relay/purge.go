package relay

import (
	"fmt"
	"os"
	"time"
)

// Purge deletes closed segments of the relay log in dir that come before
// segment keepFrom and were last written before notAfter, oldest first. The
// newest segment is never deleted, and neither is anything after the first
// segment that must stay: the relay log never gets a hole. It returns the
// segments deleted. The caller decides keepFrom: the oldest segment that
// recovery, the applier or a reader still needs.
func Purge(dir string, keepFrom uint64, notAfter time.Time) ([]Segment, error) {
	segs, err := ListSegments(dir)
	if err != nil {
		return nil, err
	}
	var purged []Segment
	for i, s := range segs {
		if s.Seq >= keepFrom || i == len(segs)-1 {
			break // segments are ordered: the rest are needed
		}
		info, err := os.Stat(s.Path)
		if err != nil || info.ModTime().After(notAfter) {
			break
		}
		if err := os.Remove(s.Path); err != nil {
			return purged, fmt.Errorf("relay purge: remove segment %s: %w", s.Path, err)
		}
		purged = append(purged, s)
	}
	return purged, nil
}
