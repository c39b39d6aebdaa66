-- What a partner's queue held of a conversation when the partner lost access to it (a change of
-- the reservation's guest partner or of the accommodation's owner): the conversation's newest
-- message then (0 without one) and the messages still unconfirmed. When the partner gets the
-- conversation back, its queue receives those and every message sent since, and not the ones it
-- had confirmed: once confirmed, a message never comes back. A partner that never had the
-- conversation has no row and receives its whole history. Partners that lost access before
-- this migration have no row either, and receive the whole history when they come back.
CREATE TABLE departed_queues (
    conversation_id uuid     NOT NULL REFERENCES conversations (id) ON DELETE CASCADE,
    partner_id      bigint   NOT NULL,
    through_seq     bigint   NOT NULL,
    pending         bigint[] NOT NULL,
    PRIMARY KEY (conversation_id, partner_id)
);
