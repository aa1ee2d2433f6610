-- 0002_audit_chain: the tamper-evident audit trail (see package audit).
--
-- Every event is hash-chained: seq is no longer handed out by an identity but by the writer that
-- commits, under the lock of the single chain_head row, so that one chain spans every writer of
-- every replica and its order is the commit order. Operations insert their events into
-- audit_pending (unlogged: its rows never outlive the transaction that wrote them); before commit
-- the writer locks chain_head, links the pending events in insertion order, moves them into
-- audit_events and advances the head. data stays json (kept byte for byte, never jsonb).

ALTER TABLE audit_events ALTER COLUMN seq DROP IDENTITY;
ALTER TABLE audit_events
    ADD COLUMN sealed      bytea,
    ADD COLUMN subject_ref text NOT NULL DEFAULT '',
    ADD COLUMN prev_hash   bytea,
    ADD COLUMN hash        bytea;

CREATE INDEX audit_events_subject_ref ON audit_events (subject_ref, seq) WHERE subject_ref <> '';

-- tag ties a pending event to the operation that seals its personal part or wants its seq.
CREATE UNLOGGED TABLE audit_pending (
    id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    at          bigint NOT NULL,
    kind        text   NOT NULL,
    message_id  text   COLLATE "C",
    app         text   NOT NULL DEFAULT '',
    data        json   NOT NULL DEFAULT '{}',
    subject_ref text   NOT NULL DEFAULT '',
    tag         bigint NOT NULL DEFAULT 0
);

-- The chain's head: the seq and hash of the last linked event (seq 0 and no hash while empty).
CREATE TABLE chain_head (
    one  boolean NOT NULL PRIMARY KEY DEFAULT true CHECK (one),
    seq  bigint  NOT NULL,
    hash bytea
);
INSERT INTO chain_head (seq, hash) VALUES (0, NULL);

-- Subject keys, wrapped under the region's data key; deleting a row is the subject's erasure.
CREATE TABLE subject_keys (
    ref     text  NOT NULL PRIMARY KEY,
    key_id  text  NOT NULL,
    wrapped bytea NOT NULL
);

CREATE TABLE audit_checkpoints (
    id              bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    region          text   NOT NULL,
    seq             bigint NOT NULL,
    hash            bytea  NOT NULL,
    first_seq       bigint NOT NULL,
    first_prev_hash bytea  NOT NULL,
    at              bigint NOT NULL,
    key_id          text   NOT NULL,
    signature       bytea  NOT NULL
);

-- The outbox payload (the full number and body until sent) is sealed under the subject's key.
ALTER TABLE outbox ADD COLUMN subject_ref text NOT NULL DEFAULT '';

-- Opt-outs and consents keep the number's lookup hash in number and its masked form in masked;
-- rows written before this migration are converted when a store with the keyring opens.
ALTER TABLE opt_outs ADD COLUMN masked text NOT NULL DEFAULT '';
ALTER TABLE consents ADD COLUMN masked text NOT NULL DEFAULT '';
