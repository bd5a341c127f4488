-- capture time-zone-offset: a fresh root connection over the unix socket, binlog_format=ROW
-- setup (its events are not captured):
USE hs_cap;
SET SESSION time_zone = '+05:30';
-- captured (every Query event these wrote):
CREATE TABLE t_tz_offset (ts TIMESTAMP NOT NULL DEFAULT '2024-01-01 12:00:00');
