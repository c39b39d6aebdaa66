ALTER TABLE conversations DROP COLUMN property_name;
