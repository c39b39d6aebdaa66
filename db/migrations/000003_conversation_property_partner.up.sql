-- The property partner of a conversation is kept on its row, so that the send and the hot reads
-- find it without joining accommodations. The composite foreign key holds it equal to the
-- accommodation's owner at all times, and follows a change of owner (ON UPDATE CASCADE); it
-- replaces the foreign key on accommodation_id alone. Filling the column rewrites every
-- conversation row once.
ALTER TABLE accommodations ADD CONSTRAINT accommodations_id_partner_id_key UNIQUE (id, partner_id);

ALTER TABLE conversations ADD COLUMN property_partner_id bigint;
UPDATE conversations c SET property_partner_id = a.partner_id FROM accommodations a WHERE a.id = c.accommodation_id;
ALTER TABLE conversations
    ALTER COLUMN property_partner_id SET NOT NULL,
    ADD CONSTRAINT conversations_accommodation_partner_fkey FOREIGN KEY (accommodation_id, property_partner_id)
        REFERENCES accommodations (id, partner_id) ON UPDATE CASCADE,
    DROP CONSTRAINT conversations_accommodation_id_fkey;
