-- capture create-database: a fresh root connection over the unix socket, binlog_format=ROW
-- setup (its events are not captured):
-- captured (every Query event these wrote):
CREATE DATABASE hs_cap CHARACTER SET utf8mb4 COLLATE utf8mb4_general_ci;
