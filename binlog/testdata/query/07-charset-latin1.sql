-- capture charset-latin1: a fresh root connection over the unix socket, binlog_format=ROW
-- setup (its events are not captured):
USE hs_cap;
SET NAMES latin1;
-- captured (every Query event these wrote):
CREATE TABLE t_latin1 (v VARCHAR(10) DEFAULT 'x');
