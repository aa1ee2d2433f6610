-- 0003_audit_chain: the tamper-evident audit trail (issue 4).
--
-- Every audit event is hash-chained (prev_hash, hash; package audit defines the encoding) and may
-- carry personal fields sealed under its subject's key (sealed, subject_ref = the subject's lookup
-- hash). The store assigns seq itself, in commit order. Rows written before this migration have no
-- hash; the store chains them when it opens the database with a keyring.
ALTER TABLE audit_events ADD COLUMN sealed BLOB;
ALTER TABLE audit_events ADD COLUMN subject_ref TEXT NOT NULL DEFAULT '';
ALTER TABLE audit_events ADD COLUMN prev_hash BLOB;
ALTER TABLE audit_events ADD COLUMN hash BLOB;

CREATE INDEX audit_events_subject_ref ON audit_events (subject_ref, seq) WHERE subject_ref <> '';

-- Subject keys, wrapped by the region's data key key_id. Deleting a row erases the subject.
CREATE TABLE subject_keys (
    ref     TEXT NOT NULL PRIMARY KEY,
    key_id  TEXT NOT NULL,
    wrapped BLOB NOT NULL
) WITHOUT ROWID;

-- Signed checkpoints of the chain head, also the anchors of retention purges.
CREATE TABLE audit_checkpoints (
    id              INTEGER PRIMARY KEY AUTOINCREMENT,
    region          TEXT    NOT NULL,
    seq             INTEGER NOT NULL,
    hash            BLOB    NOT NULL,
    first_seq       INTEGER NOT NULL,
    first_prev_hash BLOB    NOT NULL,
    at              INTEGER NOT NULL,
    key_id          TEXT    NOT NULL,
    signature       BLOB    NOT NULL
);

-- The outbox payload (the full number and body until sent) is sealed under the subject's key.
ALTER TABLE outbox ADD COLUMN subject_ref TEXT NOT NULL DEFAULT '';

-- Opt-outs and consents hold the number's lookup hash in number (from now on) and the masked number
-- for display; rows written before this migration are converted when the store opens with a keyring.
ALTER TABLE opt_outs ADD COLUMN masked TEXT NOT NULL DEFAULT '';
ALTER TABLE consents ADD COLUMN masked TEXT NOT NULL DEFAULT '';
