-- capture two-phase-alter: a fresh root connection over the unix socket, binlog_format=ROW
-- setup (its events are not captured):
USE hs_cap;
SET SESSION binlog_alter_two_phase = ON;
-- captured (every Query event these wrote):
ALTER TABLE t_default ADD COLUMN c2 INT;
