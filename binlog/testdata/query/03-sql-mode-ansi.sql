-- capture sql-mode-ansi: a fresh root connection over the unix socket, binlog_format=ROW
-- setup (its events are not captured):
USE hs_cap;
SET SESSION sql_mode = 'ANSI_QUOTES,PIPES_AS_CONCAT,NO_AUTO_VALUE_ON_ZERO,STRICT_ALL_TABLES';
-- captured (every Query event these wrote):
CREATE TABLE "t_ansi" (id INT PRIMARY KEY, "v" VARCHAR(10) DEFAULT ('a' || 'b'));
