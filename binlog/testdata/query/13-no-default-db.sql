-- capture no-default-db: a fresh root connection over the unix socket, binlog_format=ROW
-- setup (its events are not captured):
-- captured (every Query event these wrote):
CREATE TABLE hs_cap.t_nodb (id INT);
