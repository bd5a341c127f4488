-- capture drop-partial-myisam: a fresh root connection over the unix socket, binlog_format=ROW
-- setup (its events are not captured):
USE hs_cap;
CREATE TABLE m_exists (id INT) ENGINE=MyISAM;
-- captured (every Query event these wrote):
DROP TABLE m_exists, t_missing -- client got: Error 1051 (42S02): Unknown table 'hs_cap.t_missing';
