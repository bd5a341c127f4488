-- capture time-zone-named: a fresh root connection over the unix socket, binlog_format=ROW
-- setup (its events are not captured):
USE hs_cap;
SET SESSION time_zone = 'Europe/Paris';
-- captured (every Query event these wrote):
CREATE TABLE t_tz_named (ts TIMESTAMP NOT NULL DEFAULT '2024-07-01 12:00:00');
