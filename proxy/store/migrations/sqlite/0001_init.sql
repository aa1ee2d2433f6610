-- 0001_init: messages, audit trail, outbox and provider id correlation.
-- Times are unix nanoseconds. JSON columns hold text.
--
-- Every message writes few rows and few index entries, since the single writer's time per message
-- bounds the proxy's throughput: a message's status history is read from its audit events, and its
-- first provider message id lives in the messages row.

CREATE TABLE messages (
    id                  TEXT    NOT NULL PRIMARY KEY,
    app                 TEXT    NOT NULL,
    idempotency_key     TEXT,            -- NULL when the app gave none
    request_hash        TEXT    NOT NULL DEFAULT '',
    to_masked           TEXT    NOT NULL DEFAULT '',
    to_hash             TEXT    NOT NULL DEFAULT '',
    country             TEXT    NOT NULL DEFAULT '',
    sender              TEXT    NOT NULL DEFAULT '',
    sender_kind         TEXT    NOT NULL DEFAULT '',
    category            TEXT    NOT NULL DEFAULT '',
    body                TEXT    NOT NULL DEFAULT '',
    encoding            TEXT    NOT NULL DEFAULT '',
    segments            INTEGER NOT NULL DEFAULT 0,
    status              TEXT    NOT NULL,
    provider            TEXT    NOT NULL DEFAULT '',
    provider_message_id TEXT    NOT NULL DEFAULT '',  -- the first one a provider gave; '' until sent
    attempts            INTEGER NOT NULL DEFAULT 0,
    created_at          INTEGER NOT NULL,
    updated_at          INTEGER NOT NULL,
    detail              TEXT    NOT NULL DEFAULT '{}'
);

-- Partial indexes: a message without an idempotency key, a destination hash or a provider message
-- id costs no index entry for it.
CREATE UNIQUE INDEX messages_app_idempotency_key ON messages (app, idempotency_key) WHERE idempotency_key IS NOT NULL;
CREATE INDEX messages_to_hash ON messages (to_hash, created_at) WHERE to_hash <> '';
CREATE UNIQUE INDEX messages_provider_message_id ON messages (provider, provider_message_id) WHERE provider_message_id <> '';

-- audit_events is append-only and has no foreign key: the trail outlives the messages it mentions,
-- and refused messages are never stored. A message's status history is read from its events.
CREATE TABLE audit_events (
    seq        INTEGER PRIMARY KEY AUTOINCREMENT,
    at         INTEGER NOT NULL,
    kind       TEXT    NOT NULL,
    message_id TEXT,
    app        TEXT    NOT NULL DEFAULT '',
    data       TEXT    NOT NULL DEFAULT '{}'
);

CREATE INDEX audit_events_message_id ON audit_events (message_id) WHERE message_id IS NOT NULL;

CREATE TABLE outbox (
    message_id      TEXT    NOT NULL PRIMARY KEY REFERENCES messages (id) ON DELETE CASCADE,
    payload         BLOB    NOT NULL,
    created_at      INTEGER NOT NULL,
    attempts        INTEGER NOT NULL DEFAULT 0,
    next_attempt_at INTEGER NOT NULL
) WITHOUT ROWID;

-- provider_ids holds only the further provider message ids of a message sent again (failover after
-- a timeout); the first one is in messages.
CREATE TABLE provider_ids (
    provider            TEXT NOT NULL,
    provider_message_id TEXT NOT NULL,
    message_id          TEXT NOT NULL REFERENCES messages (id) ON DELETE CASCADE,
    PRIMARY KEY (provider, provider_message_id)
) WITHOUT ROWID;

CREATE INDEX provider_ids_message_id ON provider_ids (message_id);
