-- capture auto-increment: a fresh root connection over the unix socket, binlog_format=ROW
-- setup (its events are not captured):
USE hs_cap;
SET SESSION auto_increment_increment = 5, SESSION auto_increment_offset = 2;
-- captured (every Query event these wrote):
CREATE TABLE t_ai (id INT AUTO_INCREMENT PRIMARY KEY);
