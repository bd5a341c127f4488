-- capture lc-time-names: a fresh root connection over the unix socket, binlog_format=ROW
-- setup (its events are not captured):
USE hs_cap;
SET SESSION lc_time_names = 'de_DE';
-- captured (every Query event these wrote):
CREATE TABLE t_lc (v VARCHAR(5));
