-- 0002_optouts_consents: opt-outs and consent records, the facts the policy reads about a recipient.
-- Numbers are E.164 for now; issue 4 replaces them with a keyed hash behind the same store methods.

-- One row per number and scope. scope is the app (brand) the recipient opted out of, or '*' for
-- every app of the region; app is the app that recorded it and may list or remove it.
CREATE TABLE opt_outs (
    seq        INTEGER PRIMARY KEY AUTOINCREMENT,
    number     TEXT    NOT NULL,
    scope      TEXT    NOT NULL,
    app        TEXT    NOT NULL,
    source     TEXT    NOT NULL,
    created_at INTEGER NOT NULL
);

CREATE UNIQUE INDEX opt_outs_number_scope ON opt_outs (number, scope);
CREATE INDEX opt_outs_app_seq ON opt_outs (app, seq);

-- Consent records are appended, never rewritten except to note a withdrawal: the latest row per
-- (app, number, category) is the one in force.
CREATE TABLE consents (
    seq          INTEGER PRIMARY KEY AUTOINCREMENT,
    app          TEXT    NOT NULL,
    number       TEXT    NOT NULL,
    category     TEXT    NOT NULL,
    basis        TEXT    NOT NULL,
    source       TEXT    NOT NULL,
    granted_at   INTEGER NOT NULL,
    withdrawn_at INTEGER            -- NULL while in force
);

CREATE INDEX consents_number ON consents (number, app, category, seq);
