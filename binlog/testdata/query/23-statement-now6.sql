-- capture statement-now6: a fresh root connection over the unix socket, binlog_format=ROW
-- setup (its events are not captured):
USE hs_cap;
SET SESSION binlog_format = 'STATEMENT';
-- captured (every Query event these wrote):
INSERT INTO t_now VALUES (NOW(6));
