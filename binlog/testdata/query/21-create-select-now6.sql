-- capture create-select-now6: a fresh root connection over the unix socket, binlog_format=ROW
-- setup (its events are not captured):
USE hs_cap;
-- captured (every Query event these wrote):
CREATE TABLE t_now AS SELECT NOW(6) AS ts;
