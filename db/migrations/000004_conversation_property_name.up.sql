-- The accommodation's name is kept on each of its conversations too, so that the latest page,
-- the hottest read, names the sender of a property message without joining accommodations. The
-- store writes it with the conversation, reading the accommodation under FOR KEY SHARE, and
-- rewrites the accommodation's conversations when the name changes, under the accommodation's
-- FOR UPDATE row lock (internal/postgres: PutReservation, PutAccommodation); the two locks
-- conflict, so neither can miss the other. Filling the column rewrites every conversation of a
-- named accommodation once.
ALTER TABLE conversations ADD COLUMN property_name text;
UPDATE conversations c SET property_name = a.name
FROM accommodations a
WHERE a.id = c.accommodation_id AND a.name IS NOT NULL;
