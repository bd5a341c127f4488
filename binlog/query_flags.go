package binlog

import (
	"bytes"
	"strconv"
	"strings"
)

// Bits of a Query event's flags2 (Query.FlagsTwo): the session's option
// bits that the master writes to the binary log (OPTION_* in MariaDB's
// sql/sql_priv.h, OPTIONS_WRITTEN_TO_BIN_LOG in sql/log_event.h).
const (
	OptionAutoIsNull              uint32 = 1 << 14 // sql_auto_is_null=1
	OptionNoCheckConstraintChecks uint32 = 1 << 15 // check_constraint_checks=0 (MariaDB)
	OptionNotAutocommit           uint32 = 1 << 19 // never written: the master forces autocommit=1
	OptionExplicitDefTimestamp    uint32 = 1 << 24 // explicit_defaults_for_timestamp=1 (MariaDB)
	OptionNoForeignKeyChecks      uint32 = 1 << 26 // foreign_key_checks=0
	OptionRelaxedUniqueChecks     uint32 = 1 << 27 // unique_checks=0
	OptionIfExists                uint32 = 1 << 28 // sql_if_exists=1 (MariaDB)
	OptionInsertHistory           uint32 = 1 << 30 // system_versioning_insert_history=1 (MariaDB)
)

// Flags2Written returns the flags2 bits that the master which wrote the
// format description event fde writes: a bit outside the mask is 0 in an
// event because that master does not record it, not because the option was
// off. It follows MariaDB's
// Format_description_log_event::deduct_options_written_to_bin_log: IF_EXISTS
// from MariaDB 10.5.2, EXPLICIT_DEF_TIMESTAMP from 10.5.17, 10.6.9, 10.7.5,
// 10.8.4, 10.9.2 and 10.10; neither for MySQL or an unreadable version.
func Flags2Written(fde []byte) uint32 {
	mask := OptionAutoIsNull | OptionNotAutocommit | OptionNoForeignKeyChecks | OptionRelaxedUniqueChecks |
		OptionInsertHistory | OptionNoCheckConstraintChecks
	version := FDEServerVersion(fde)
	v, ok := splitVersion(version)
	if !ok || !(strings.Contains(version, "MariaDB") || strings.Contains(version, "-maria-")) || less(v, [3]int{10, 5, 2}) {
		return mask
	}
	mask |= OptionIfExists
	firstPatch := [10]int{99, 99, 99, 99, 99, 17, 9, 5, 4, 2} // per 10.minor
	if v[0] == 10 && v[1] < 10 && v[2] < firstPatch[v[1]] {
		return mask
	}
	return mask | OptionExplicitDefTimestamp
}

// FDEServerVersion returns the server_version of a format description event
// ("10.11.6-MariaDB-log"), or "" when fde is too short to hold one.
func FDEServerVersion(fde []byte) string {
	// body: binlog_version(2) server_version(50, NUL-padded)
	if len(fde) < HeaderLen+2+50 {
		return ""
	}
	v := fde[HeaderLen+2 : HeaderLen+2+50]
	if i := bytes.IndexByte(v, 0); i >= 0 {
		v = v[:i]
	}
	return string(v)
}

// splitVersion reads the leading major.minor.patch of a server version.
func splitVersion(s string) ([3]int, bool) {
	var v [3]int
	for i := range v {
		j := 0
		for j < len(s) && s[j] >= '0' && s[j] <= '9' {
			j++
		}
		n, err := strconv.Atoi(s[:j])
		if err != nil {
			return v, false
		}
		v[i], s = n, s[j:]
		if i < 2 {
			if !strings.HasPrefix(s, ".") {
				return v, false
			}
			s = s[1:]
		}
	}
	return v, true
}

func less(a, b [3]int) bool {
	for i := range a {
		if a[i] != b[i] {
			return a[i] < b[i]
		}
	}
	return false
}
