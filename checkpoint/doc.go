// Package checkpoint is the agent's local bookkeeping: one bbolt file that
// holds the frontiers (received, acked), the master's identity and an
// append-only audit log. It is the only package that imports bbolt.
//
// Invariants:
//   - A frontier never moves backwards: SaveFrontiers refuses a received or
//     acked position before the stored one (ErrBackwards). That costs one
//     comparison and catches the worst class of bugs.
//   - Positions are stored self-describing (binlog.Position.Encode), so a
//     stored value says which flavor and which form it is in.
//   - The role only moves forward within an epoch (SaveRole, ErrRoleBackwards),
//     with one exception: AbortPromotion undoes a promotion still at its first
//     step (StepStarted: nothing but the decision was done), back to the
//     standby of the epoch before. Promotion steps of older versions (drain
//     before fence) still decode, rank where their resume continues, and
//     never read as fenced when they were not (Isolated, Drained).
//   - Raw events never go into bbolt; the relay log holds them. The received
//     frontier here is a lower bound of the relay log's true end: the relay
//     writer checkpoints it periodically, and recovery scans forward from it.
//
// A Store is opened by one process at a time (bbolt takes a file lock); the
// daemon holds it, and `hotstandby status` reads it only while the daemon is
// stopped. Its methods are safe for concurrent use.
package checkpoint
