-- capture create-user-grant: a fresh root connection over the unix socket, binlog_format=ROW
-- setup (its events are not captured):
USE hs_cap;
-- captured (every Query event these wrote):
CREATE USER 'app'@'localhost' IDENTIFIED BY 'not-a-secret';
GRANT SELECT ON hs_cap.* TO 'app'@'localhost';
