-- Events stored in the transaction of the change that caused them, or by a bus whose broker
-- did not take them, then published by a relay: the whole CloudEvent, attributes (a JSON
-- array of [name, value] pairs, in order) and data, as the broker gets it. Times are Unix
-- seconds.
CREATE TABLE IF NOT EXISTS tidings_outbox (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    id TEXT NOT NULL,
    topic TEXT NOT NULL,
    attributes TEXT NOT NULL,
    data BLOB NOT NULL,
    created_at INTEGER NOT NULL DEFAULT (unixepoch()),
    sent_at INTEGER
);

-- The relay reads the pending rows in order.
CREATE INDEX IF NOT EXISTS tidings_outbox_pending ON tidings_outbox (seq) WHERE sent_at IS NULL;
