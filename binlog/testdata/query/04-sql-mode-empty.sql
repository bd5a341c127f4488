-- capture sql-mode-empty: a fresh root connection over the unix socket, binlog_format=ROW
-- setup (its events are not captured):
USE hs_cap;
SET SESSION sql_mode = '';
-- captured (every Query event these wrote):
CREATE TABLE t_nomode (d DATE NOT NULL DEFAULT '0000-00-00');
