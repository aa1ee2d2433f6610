-- 0001_init: messages, status history, audit trail, outbox and provider id correlation.
-- Times are unix nanoseconds. JSON columns hold text.

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
    provider_message_id TEXT    NOT NULL DEFAULT '',
    attempts            INTEGER NOT NULL DEFAULT 0,
    created_at          INTEGER NOT NULL,
    updated_at          INTEGER NOT NULL,
    detail              TEXT    NOT NULL DEFAULT '{}'
);

CREATE UNIQUE INDEX messages_app_idempotency_key ON messages (app, idempotency_key);
CREATE INDEX messages_to_hash ON messages (to_hash, created_at);

CREATE TABLE message_status (
    message_id TEXT    NOT NULL REFERENCES messages (id) ON DELETE CASCADE,
    seq        INTEGER NOT NULL,
    status     TEXT    NOT NULL,
    at         INTEGER NOT NULL,
    provider   TEXT    NOT NULL DEFAULT '',
    code       TEXT    NOT NULL DEFAULT '',
    detail     TEXT    NOT NULL DEFAULT '',
    PRIMARY KEY (message_id, seq)
) WITHOUT ROWID;

-- audit_events has no foreign key: the trail outlives the messages it mentions, and refused
-- messages are never stored.
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
);

CREATE TABLE provider_ids (
    provider            TEXT NOT NULL,
    provider_message_id TEXT NOT NULL,
    message_id          TEXT NOT NULL REFERENCES messages (id) ON DELETE CASCADE,
    PRIMARY KEY (provider, provider_message_id)
) WITHOUT ROWID;

CREATE INDEX provider_ids_message_id ON provider_ids (message_id);
