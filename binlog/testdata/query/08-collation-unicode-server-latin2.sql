-- capture collation-unicode-server-latin2: a fresh root connection over the unix socket, binlog_format=ROW
-- setup (its events are not captured):
USE hs_cap;
SET NAMES utf8mb4 COLLATE utf8mb4_unicode_ci;
SET SESSION collation_server = 'latin2_general_ci';
-- captured (every Query event these wrote):
CREATE TABLE t_unicode (v VARCHAR(10));
