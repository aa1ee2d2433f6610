-- 0004_drop_unread_indexes: fewer index entries per message for the single writer.
--
-- messages_to_hash has no reader: nothing looks messages up by their destination's hash (a
-- recipient's audit events are found through audit_events_subject_ref, its opt-outs, consents and
-- key through their own tables). Its key is a keyed hash, so every message put its entry in a
-- random leaf page of its own: about one page of every five a commit wrote to the WAL. A reader
-- by destination should come back with the index it needs.
DROP INDEX IF EXISTS messages_to_hash;
