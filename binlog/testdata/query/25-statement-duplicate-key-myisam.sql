-- capture statement-duplicate-key-myisam: a fresh root connection over the unix socket, binlog_format=ROW
-- setup (its events are not captured):
USE hs_cap;
CREATE TABLE m_dup (id INT PRIMARY KEY) ENGINE=MyISAM;
SET SESSION binlog_format = 'STATEMENT';
-- captured (every Query event these wrote):
INSERT INTO m_dup VALUES (1), (1) -- client got: Error 1062 (23000): Duplicate entry '1' for key 'PRIMARY';
