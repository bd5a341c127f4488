-- capture view-definer-current-user: a fresh root connection over the unix socket, binlog_format=ROW
-- setup (its events are not captured):
USE hs_cap;
-- captured (every Query event these wrote):
CREATE DEFINER = CURRENT_USER VIEW v_one AS SELECT 1 AS one;
