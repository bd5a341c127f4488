-- capture myisam-row-insert: a fresh root connection over the unix socket, binlog_format=ROW
-- setup (its events are not captured):
USE hs_cap;
CREATE TABLE m_rows (id INT PRIMARY KEY) ENGINE=MyISAM;
-- captured (every Query event these wrote):
INSERT INTO m_rows VALUES (1), (2);
