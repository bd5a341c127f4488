-- capture rename-table: a fresh root connection over the unix socket, binlog_format=ROW
-- setup (its events are not captured):
USE hs_cap;
-- captured (every Query event these wrote):
RENAME TABLE t_latin1 TO t_latin1_renamed;
