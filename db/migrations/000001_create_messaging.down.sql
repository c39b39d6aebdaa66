DROP TABLE idempotency_keys;
DROP TABLE deliveries;
DROP TABLE messages;
DROP TABLE conversations;
DROP TABLE accommodations;
DROP TABLE api_keys;
DROP SEQUENCE partner_affiliate_ids;
DROP TABLE partners;
