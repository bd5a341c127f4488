-- capture collation-database: a fresh root connection over the unix socket, binlog_format=ROW
-- setup (its events are not captured):
USE hs_cap;
SET SESSION collation_database = 'latin1_swedish_ci';
-- captured (every Query event these wrote):
CREATE TABLE t_cdb (v VARCHAR(5));
