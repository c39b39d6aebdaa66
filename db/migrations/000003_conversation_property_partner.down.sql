ALTER TABLE conversations
    ADD CONSTRAINT conversations_accommodation_id_fkey FOREIGN KEY (accommodation_id) REFERENCES accommodations (id),
    DROP CONSTRAINT conversations_accommodation_partner_fkey,
    DROP COLUMN property_partner_id;
ALTER TABLE accommodations DROP CONSTRAINT accommodations_id_partner_id_key;
