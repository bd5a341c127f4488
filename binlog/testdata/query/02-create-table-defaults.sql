-- capture create-table-defaults: a fresh root connection over the unix socket, binlog_format=ROW
-- setup (its events are not captured):
USE hs_cap;
-- captured (every Query event these wrote):
CREATE TABLE t_default (id INT PRIMARY KEY, v VARCHAR(20)) ENGINE=InnoDB;
