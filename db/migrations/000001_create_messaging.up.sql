-- A partner is a property platform or a guest platform, identified by its affiliate id.
CREATE TABLE partners (
    affiliate_id bigint      PRIMARY KEY CHECK (affiliate_id > 0),
    kind         text        NOT NULL CHECK (kind IN ('property', 'guest')),
    name         text        NOT NULL,
    created_at   timestamptz NOT NULL
);

-- Assigned affiliate ids; an insert skips ids an operator chose explicitly.
CREATE SEQUENCE partner_affiliate_ids;

-- API keys are stored only as the SHA-256 of the secret; the secret is shown once.
CREATE TABLE api_keys (
    id           uuid        PRIMARY KEY,
    affiliate_id bigint      NOT NULL REFERENCES partners (affiliate_id),
    name         text        NOT NULL,
    secret_hash  bytea       NOT NULL UNIQUE,
    created_at   timestamptz NOT NULL,
    revoked_at   timestamptz
);

CREATE TABLE accommodations (
    id         bigint      PRIMARY KEY CHECK (id > 0),
    partner_id bigint      NOT NULL REFERENCES partners (affiliate_id),
    name       text,
    created_at timestamptz NOT NULL,
    updated_at timestamptz NOT NULL
);
CREATE INDEX accommodations_partner_idx ON accommodations (partner_id);

-- One row per registered reservation: the reservation's facts and its one conversation.
-- stay_end is derived from checkout, status and cancelled_at (see internal/messaging) and
-- stored so the windows can be applied in queries and the purge can find expired rows.
CREATE TABLE conversations (
    id                      uuid        PRIMARY KEY,
    reservation_id          text        NOT NULL UNIQUE,
    accommodation_id        bigint      NOT NULL REFERENCES accommodations (id),
    guest_partner_id        bigint      REFERENCES partners (affiliate_id),
    guest_name              text,
    checkin                 date        NOT NULL,
    checkout                date        NOT NULL,
    status                  text        NOT NULL CHECK (status IN ('confirmed', 'cancelled')),
    cancelled_at            timestamptz,
    stay_end                timestamptz NOT NULL,
    guest_participant_id    uuid        NOT NULL,
    property_participant_id uuid        NOT NULL,
    last_guest_message_at   timestamptz,
    created_at              timestamptz NOT NULL,
    updated_at              timestamptz NOT NULL,
    CHECK (checkout > checkin),
    CHECK ((status = 'cancelled') = (cancelled_at IS NOT NULL))
);
CREATE INDEX conversations_accommodation_idx ON conversations (accommodation_id);
CREATE INDEX conversations_guest_partner_idx ON conversations (guest_partner_id)
    WHERE guest_partner_id IS NOT NULL;
CREATE INDEX conversations_stay_end_idx ON conversations (stay_end);

-- seq is the server-assigned order of messages; id is the public UUID.
CREATE TABLE messages (
    seq             bigint      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    id              uuid        NOT NULL UNIQUE,
    conversation_id uuid        NOT NULL REFERENCES conversations (id),
    sender          text        NOT NULL CHECK (sender IN ('guest', 'property')),
    content         text        NOT NULL,
    attachments     uuid[]      NOT NULL DEFAULT '{}',
    created_at      timestamptz NOT NULL
);
CREATE INDEX messages_conversation_idx ON messages (conversation_id, seq);

-- The delivery queue: one row per (partner, message) not yet confirmed. Confirming deletes the
-- row. There is deliberately no foreign key to messages: it would need a second index here to
-- keep message deletes cheap; the purge removes queue rows before their messages.
CREATE TABLE deliveries (
    partner_id bigint NOT NULL,
    seq        bigint NOT NULL,
    PRIMARY KEY (partner_id, seq)
);

-- Idempotency-Key records of /messages/send, scoped to the partner.
CREATE TABLE idempotency_keys (
    partner_id      bigint      NOT NULL,
    key             text        NOT NULL,
    request_hash    bytea       NOT NULL,
    message_id      uuid        NOT NULL,
    conversation_id uuid        NOT NULL REFERENCES conversations (id),
    created_at      timestamptz NOT NULL,
    PRIMARY KEY (partner_id, key)
);
CREATE INDEX idempotency_keys_created_idx ON idempotency_keys (created_at);
CREATE INDEX idempotency_keys_conversation_idx ON idempotency_keys (conversation_id);
