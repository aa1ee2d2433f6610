-- 0006_audit_events_plain_rowid: audit_events.seq loses AUTOINCREMENT.
--
-- The audit chain numbers its events itself: every insert names seq (the chain head's plus one),
-- and the head is read from the table at start. AUTOINCREMENT added nothing to that, but made every
-- commit update the table's row in sqlite_sequence: one more page written to the WAL per commit,
-- one in fourteen when a commit holds a single message. Dropping it needs the table rebuilt; rows,
-- sequence numbers and hashes are copied unchanged, so the chain verifies as before.
CREATE TABLE audit_events_rebuilt (
    seq         INTEGER PRIMARY KEY,
    at          INTEGER NOT NULL,
    kind        TEXT    NOT NULL,
    message_id  TEXT,
    app         TEXT    NOT NULL DEFAULT '',
    data        TEXT    NOT NULL DEFAULT '{}',
    sealed      BLOB,
    subject_ref TEXT    NOT NULL DEFAULT '',
    prev_hash   BLOB,
    hash        BLOB
);

INSERT INTO audit_events_rebuilt (seq, at, kind, message_id, app, data, sealed, subject_ref, prev_hash, hash)
SELECT seq, at, kind, message_id, app, data, sealed, subject_ref, prev_hash, hash FROM audit_events ORDER BY seq;

DROP TABLE audit_events;
ALTER TABLE audit_events_rebuilt RENAME TO audit_events;
DELETE FROM sqlite_sequence WHERE name = 'audit_events';

CREATE INDEX audit_events_message_id ON audit_events (message_id) WHERE message_id IS NOT NULL;
CREATE INDEX audit_events_subject_ref ON audit_events (subject_ref, seq) WHERE subject_ref <> '';
