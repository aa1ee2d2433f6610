-- 0004_outbox_maybe_sent: the providers that may have taken a message waiting for its retry (their
-- Send had no known result), comma-separated, '' for none. After a restart the resend goes to them
-- first, with the same idempotency key, instead of to the first provider of the route.
ALTER TABLE outbox ADD COLUMN maybe_sent text NOT NULL DEFAULT '';
