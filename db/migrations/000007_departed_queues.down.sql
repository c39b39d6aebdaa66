BEGIN;

DROP TABLE departed_queues;

COMMIT;
