-- Events stored in the transaction of the change that caused them, then published by a relay:
-- the whole CloudEvent, attributes (names and values, in order) and data, as the broker gets it.
CREATE TABLE IF NOT EXISTS tidings_outbox (
    seq BIGSERIAL PRIMARY KEY,
    id TEXT NOT NULL,
    topic TEXT NOT NULL,
    attribute_names TEXT[] NOT NULL,
    attribute_values TEXT[] NOT NULL,
    data BYTEA NOT NULL,
    created_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    sent_at TIMESTAMPTZ
);

-- The relay reads the pending rows in order.
CREATE INDEX IF NOT EXISTS tidings_outbox_pending ON tidings_outbox (seq) WHERE sent_at IS NULL;
