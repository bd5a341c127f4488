-- capture drop-if-exists-missing: a fresh root connection over the unix socket, binlog_format=ROW
-- setup (its events are not captured):
USE hs_cap;
-- captured (every Query event these wrote):
DROP TABLE IF EXISTS t_missing;
