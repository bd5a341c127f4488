-- capture statement-multi-update: a fresh root connection over the unix socket, binlog_format=ROW
-- setup (its events are not captured):
USE hs_cap;
INSERT INTO t_default VALUES (1, 'a'), (2, 'b');
INSERT INTO t_ai VALUES (1), (2);
SET SESSION binlog_format = 'STATEMENT';
-- captured (every Query event these wrote):
UPDATE t_default a, t_ai b SET a.v = 'x' WHERE a.id = b.id;
