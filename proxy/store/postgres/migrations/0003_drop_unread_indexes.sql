-- 0003_drop_unread_indexes: messages_to_hash has no reader (as in the SQLite store's 0004): a
-- recipient's audit events are found through audit_events_subject_ref and its opt-outs, consents
-- and key through their own tables. Its key is a keyed hash, so every message wrote its entry to a
-- random page. A reader by destination should come back with the index it needs.
DROP INDEX IF EXISTS messages_to_hash;
