-- 0001_init: messages, audit trail, outbox with claims, provider id correlation, opt-outs and
-- consent records.
--
-- Times are unix nanoseconds in BIGINT, as in the SQLite store: timestamptz keeps microseconds only
-- and callers compare the times they gave with the times they read back. JSON columns are json, not
-- jsonb, so the audit trail keeps the exact text it was given.
--
-- Several replicas may write at once: every rule the store depends on is a constraint here
-- (primary keys, unique (app, idempotency_key), unique provider message ids), never the
-- single writer of one process.

CREATE TABLE messages (
    id                  text    COLLATE "C" NOT NULL PRIMARY KEY,  -- byte order, as PendingOutbox pages
    app                 text    NOT NULL,
    idempotency_key     text,            -- NULL when the app gave none; NULLs never conflict
    request_hash        text    NOT NULL DEFAULT '',
    to_masked           text    NOT NULL DEFAULT '',
    to_hash             text    NOT NULL DEFAULT '',
    country             text    NOT NULL DEFAULT '',
    sender              text    NOT NULL DEFAULT '',
    sender_kind         text    NOT NULL DEFAULT '',
    category            text    NOT NULL DEFAULT '',
    body                text    NOT NULL DEFAULT '',
    encoding            text    NOT NULL DEFAULT '',
    segments            integer NOT NULL DEFAULT 0 CHECK (segments >= 0),
    status              text    NOT NULL,
    provider            text    NOT NULL DEFAULT '',
    provider_message_id text    NOT NULL DEFAULT '',  -- the first one a provider gave; '' until sent
    attempts            integer NOT NULL DEFAULT 0,
    created_at          bigint  NOT NULL,
    updated_at          bigint  NOT NULL,
    detail              json    NOT NULL DEFAULT '{}',
    CONSTRAINT messages_app_idempotency_key UNIQUE (app, idempotency_key)
);

CREATE INDEX messages_to_hash ON messages (to_hash, created_at) WHERE to_hash <> '';

-- audit_events is append-only and has no foreign key: the trail outlives the messages it mentions,
-- and refused messages are never stored. A message's status history is read from its events.
CREATE TABLE audit_events (
    seq        bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    at         bigint NOT NULL,
    kind       text   NOT NULL,
    message_id text COLLATE "C",
    app        text   NOT NULL DEFAULT '',
    data       json   NOT NULL DEFAULT '{}'
);

CREATE INDEX audit_events_message_id ON audit_events (message_id, seq) WHERE message_id IS NOT NULL;

-- claimed_by and claimed_until (unix nanoseconds on the database's clock) let one replica take rows
-- to dispatch without another taking them too; see Postgres.ClaimOutbox.
CREATE TABLE outbox (
    message_id      text   COLLATE "C" NOT NULL PRIMARY KEY REFERENCES messages (id) ON DELETE CASCADE,
    payload         bytea  NOT NULL,
    created_at      bigint NOT NULL,
    attempts        integer NOT NULL DEFAULT 0,
    next_attempt_at bigint NOT NULL,
    claimed_by      text,
    claimed_until   bigint NOT NULL DEFAULT 0
);

-- provider_ids holds every provider message id a message was given, the first one included, so
-- that a receipt finds its message with one index lookup.
CREATE TABLE provider_ids (
    provider            text NOT NULL,
    provider_message_id text NOT NULL,
    message_id          text COLLATE "C" NOT NULL REFERENCES messages (id) ON DELETE CASCADE,
    PRIMARY KEY (provider, provider_message_id)
);

CREATE INDEX provider_ids_message_id ON provider_ids (message_id);

-- One row per number and scope. scope is the app the recipient opted out of, or '*' for every app
-- of the region; app is the app that recorded it and may list or remove it.
CREATE TABLE opt_outs (
    seq        bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    number     text   NOT NULL,
    scope      text   NOT NULL,
    app        text   NOT NULL,
    source     text   NOT NULL,
    created_at bigint NOT NULL,
    CONSTRAINT opt_outs_number_scope UNIQUE (number, scope)
);

CREATE INDEX opt_outs_app_seq ON opt_outs (app, seq);

-- Consent records are appended, never rewritten except to note a withdrawal: the latest row per
-- (app, number, category) is the one in force.
CREATE TABLE consents (
    seq          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    app          text   NOT NULL,
    number       text   NOT NULL,
    category     text   NOT NULL,
    basis        text   NOT NULL,
    source       text   NOT NULL,
    granted_at   bigint NOT NULL,
    withdrawn_at bigint            -- NULL while in force
);

CREATE INDEX consents_number ON consents (number, app, category, seq);
