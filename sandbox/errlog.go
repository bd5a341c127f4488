package sandbox

import (
	"bytes"
	"fmt"
	"io"
	"os"
	"strings"
)

// maxTailBytes bounds how much of the error log is read to find its tail.
const maxTailBytes = 256 << 10

// ErrorLogTail returns the last n lines of the server's error log, which
// collects the log of every run in Dir. It returns a note in place of the
// lines if the log cannot be read.
func (s *Server) ErrorLogTail(n int) string {
	return errorLogSince(s.paths.errLog, 0, n)
}

// errorLogSince returns the last n lines of the log at path written at or
// after byte offset from.
func errorLogSince(path string, from int64, n int) string {
	f, err := os.Open(path)
	if err != nil {
		return fmt.Sprintf("(error log unreadable: %v)", err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return fmt.Sprintf("(error log unreadable: %v)", err)
	}
	start := max(from, fi.Size()-maxTailBytes, 0)
	b, err := io.ReadAll(io.NewSectionReader(f, start, fi.Size()-start))
	if err != nil {
		return fmt.Sprintf("(error log unreadable: %v)", err)
	}
	return tailLines(b, n)
}

// tailLines returns the last n lines of b, without a trailing newline.
func tailLines(b []byte, n int) string {
	b = bytes.TrimRight(b, "\n")
	if n <= 0 || len(b) == 0 {
		return ""
	}
	i := len(b)
	for range n {
		j := bytes.LastIndexByte(b[:i], '\n')
		if j < 0 {
			return string(b)
		}
		i = j
	}
	return string(b[i+1:])
}

// logLines sends each line of text to the configured Log function, if any.
func (s *Server) logLines(text string) {
	if s.cfg.Log == nil || text == "" {
		return
	}
	for _, line := range strings.Split(text, "\n") {
		s.cfg.Log("mariadbd %s: %s", s.Addr(), line)
	}
}
