//! The outbox's statements on SQLite, where one relay runs per database.

use std::path::Path;

use serde_json::Value;
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqliteRow};
use sqlx::{Row, SqliteConnection};
use tidings_core::Topic;
use tidings_core::broker::Message;

use crate::outbox::{OutboxError, Stored, stored_message};

/// Opens the SQLite database at `path`, creating the file if it does not exist, in
/// write-ahead-log mode (so the relay reads while the service writes), and makes the outbox
/// table: the embedded store for [`Bus::with_fallback`](tidings_core::Bus::with_fallback) in a
/// service that has no database of its own.
pub async fn open_sqlite(path: impl AsRef<Path>) -> Result<SqlitePool, OutboxError> {
    let options = SqliteConnectOptions::new()
        .filename(path)
        .create_if_missing(true)
        .journal_mode(SqliteJournalMode::Wal);
    let pool = SqlitePool::connect_with(options).await?;
    crate::migrate(&pool).await?;
    Ok(pool)
}

pub(crate) async fn insert(
    conn: &mut SqliteConnection,
    topic: &Topic,
    message: &Message,
) -> Result<(), OutboxError> {
    // A JSON list of [name, value] pairs; built as a value, whose text cannot fail.
    let attributes = Value::Array(
        message
            .envelope
            .attributes()
            .into_iter()
            .map(|(name, value)| Value::from(vec![name, value.as_ref()]))
            .collect(),
    )
    .to_string();
    sqlx::query("INSERT INTO tidings_outbox (id, topic, attributes, data) VALUES (?, ?, ?, ?)")
        .bind(message.envelope.id.as_str())
        .bind(topic.as_str())
        .bind(attributes)
        .bind(message.data.as_ref())
        .execute(conn)
        .await?;
    Ok(())
}

/// Up to `batch` pending events, in the order stored.
pub(crate) async fn pending(pool: &SqlitePool, batch: i64) -> Result<Vec<Stored>, sqlx::Error> {
    let rows = sqlx::query(
        "SELECT seq, topic, attributes, data FROM tidings_outbox \
         WHERE sent_at IS NULL ORDER BY seq LIMIT ?",
    )
    .bind(batch)
    .fetch_all(pool)
    .await?;
    rows.iter().map(stored).collect()
}

fn stored(row: &SqliteRow) -> Result<Stored, sqlx::Error> {
    let seq: i64 = row.try_get("seq")?;
    let attributes: String = row.try_get("attributes")?;
    let message = match serde_json::from_str::<Vec<(String, String)>>(&attributes) {
        Ok(attributes) => {
            stored_message(seq, row.try_get("topic")?, attributes, row.try_get("data")?)
        }
        Err(e) => Err(OutboxError::Corrupt {
            seq,
            reason: format!("its attributes are not a JSON list of pairs: {e}"),
        }),
    };
    Ok((seq, message))
}

pub(crate) async fn mark_sent(pool: &SqlitePool, sent: &[i64]) -> Result<(), OutboxError> {
    let sent = Value::from(sent).to_string();
    sqlx::query(
        "UPDATE tidings_outbox SET sent_at = unixepoch() \
         WHERE seq IN (SELECT value FROM json_each(?))",
    )
    .bind(sent)
    .execute(pool)
    .await?;
    Ok(())
}

pub(crate) async fn purge(pool: &SqlitePool, retention_secs: f64) -> Result<u64, OutboxError> {
    let deleted = sqlx::query(
        "DELETE FROM tidings_outbox WHERE sent_at IS NOT NULL AND sent_at < unixepoch() - ?",
    )
    .bind(retention_secs)
    .execute(pool)
    .await?;
    Ok(deleted.rows_affected())
}
