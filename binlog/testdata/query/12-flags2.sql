-- capture flags2: a fresh root connection over the unix socket, binlog_format=ROW
-- setup (its events are not captured):
USE hs_cap;
SET SESSION foreign_key_checks = 0, SESSION unique_checks = 0, SESSION sql_auto_is_null = 1;
-- captured (every Query event these wrote):
CREATE TABLE t_fk (id INT PRIMARY KEY, p INT, FOREIGN KEY (p) REFERENCES t_no_parent (id));
