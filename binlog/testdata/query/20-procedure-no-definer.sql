-- capture procedure-no-definer: a fresh root connection over the unix socket, binlog_format=ROW
-- setup (its events are not captured):
USE hs_cap;
-- captured (every Query event these wrote):
CREATE PROCEDURE p_one() SELECT 1;
