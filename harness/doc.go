// Package harness is the test-only toolkit shared by the integration tests
// (package agent) and the benchmarks (package bench): building the
// hotstandby binary, running it as a process that a test can kill -9,
// waiting for conditions, reading the master's binlog positions, purging
// binlogs for real, and diagnosing a master that sends nothing.
//
// Only _test.go files import it; production code never does (nor does it
// import sandbox).
//
// # Waiting
//
// Tests wait for conditions, never for fixed sleeps: WaitFor and Poll check
// a condition every interval until it holds or the deadline passes, and fail
// the test with what they waited for. Deadlines are generous because the
// suite shares two cores with other work; a test that passes only on an
// idle machine is a defect.
//
// # Stuck dumps diagnose themselves
//
// A Process watches its own output. When the agent logs that a dump
// connection delivered nothing ("master sends nothing"), the Process's
// OnStuck callback runs once; the tests pass one that writes the master's
// sandbox.Server.Diagnose (processlist, semi-sync status, slave hosts,
// error log, a gdb backtrace of mariadbd) into the test's log.
package harness
