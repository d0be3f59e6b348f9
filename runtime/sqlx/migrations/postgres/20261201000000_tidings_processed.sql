-- The ids of the events each consumer handled, for deduplication: one row per scope (a
-- consumer group, or one subscription) and event id.
CREATE TABLE IF NOT EXISTS tidings_processed (
    scope TEXT NOT NULL,
    id TEXT NOT NULL,
    processed_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    PRIMARY KEY (scope, id)
);

-- Purging by age reads this.
CREATE INDEX IF NOT EXISTS tidings_processed_at ON tidings_processed (processed_at);
