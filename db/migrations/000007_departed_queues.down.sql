-- Parked queues (through_seq = max int64: entries the conversation's guest partner can no
-- longer read, moved out of its queue by the purge) go back into the queue, so that reverting
-- loses no unconfirmed message: without this table, a latest page passes over such entries
-- itself. Departures need nothing: without this table, a partner that gets a conversation back
-- receives its whole history, which holds every message it had not confirmed.
INSERT INTO deliveries (partner_id, seq, message_id, conversation_id)
SELECT q.partner_id, m.seq, m.id, m.conversation_id
FROM departed_queues q
JOIN conversations c ON c.id = q.conversation_id AND c.guest_partner_id = q.partner_id
CROSS JOIN LATERAL unnest(q.pending) AS p (seq)
JOIN messages m ON m.seq = p.seq
WHERE q.through_seq = 9223372036854775807
ON CONFLICT DO NOTHING;

DROP TABLE departed_queues;
