-- capture two-phase-alter-rollback: a fresh root connection over the unix socket, binlog_format=ROW
-- setup (its events are not captured):
USE hs_cap;
CREATE TABLE t_dups (a INT);
INSERT INTO t_dups VALUES (1), (1);
SET SESSION binlog_alter_two_phase = ON;
-- captured (every Query event these wrote):
ALTER TABLE t_dups ADD UNIQUE (a) -- client got: Error 1062 (23000): Duplicate entry '1' for key 'a';
