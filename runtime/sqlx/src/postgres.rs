//! The outbox's statements on PostgreSQL, where relays take turns by an advisory lock.

use sqlx::postgres::PgRow;
use sqlx::{PgConnection, PgPool, Postgres, Row, Transaction};
use tidings_core::Topic;
use tidings_core::broker::Message;

use crate::outbox::{OutboxError, Stored, stored_message};

/// The high half of the advisory lock that lets one relay of an outbox publish at a time; the
/// low half is the outbox table's oid, so the outboxes of two schemas in one database (two
/// services, or two tests) never wait for each other.
const RELAY_LOCK: i64 = 0x7469_6469;

pub(crate) async fn insert(
    conn: &mut PgConnection,
    topic: &Topic,
    message: &Message,
) -> Result<(), sqlx::Error> {
    let (names, values): (Vec<&str>, Vec<String>) = message
        .envelope
        .attributes()
        .into_iter()
        .map(|(name, value)| (name, value.into_owned()))
        .unzip();
    sqlx::query(
        "INSERT INTO tidings_outbox (id, topic, attribute_names, attribute_values, data) \
         VALUES ($1, $2, $3, $4, $5)",
    )
    .bind(message.envelope.id.as_str())
    .bind(topic.as_str())
    .bind(&names)
    .bind(&values)
    .bind(message.data.as_ref())
    .execute(conn)
    .await?;
    Ok(())
}

/// A relay's turn: a transaction holding the outbox's relay lock, or `None` when another
/// relay has it. The lock goes with the transaction, so a relay that dies gives it up.
pub(crate) async fn take_turn(
    pool: &PgPool,
) -> Result<Option<Transaction<'static, Postgres>>, sqlx::Error> {
    let mut tx = pool.begin().await?;
    let turn: bool = sqlx::query_scalar(
        "SELECT pg_try_advisory_xact_lock(($1 << 32) | 'tidings_outbox'::regclass::oid::bigint)",
    )
    .bind(RELAY_LOCK)
    .fetch_one(&mut *tx)
    .await?;
    Ok(turn.then_some(tx))
}

/// Up to `batch` pending events, in the order stored.
pub(crate) async fn pending(
    conn: &mut PgConnection,
    batch: i64,
) -> Result<Vec<Stored>, sqlx::Error> {
    let rows = sqlx::query(
        "SELECT seq, topic, attribute_names, attribute_values, data FROM tidings_outbox \
         WHERE sent_at IS NULL ORDER BY seq LIMIT $1",
    )
    .bind(batch)
    .fetch_all(conn)
    .await?;
    rows.iter().map(stored).collect()
}

fn stored(row: &PgRow) -> Result<Stored, sqlx::Error> {
    let seq: i64 = row.try_get("seq")?;
    let names: Vec<String> = row.try_get("attribute_names")?;
    let values: Vec<String> = row.try_get("attribute_values")?;
    let message = stored_message(
        seq,
        row.try_get("topic")?,
        names.into_iter().zip(values),
        row.try_get("data")?,
    );
    Ok((seq, message))
}

pub(crate) async fn mark_sent(conn: &mut PgConnection, sent: &[i64]) -> Result<(), sqlx::Error> {
    sqlx::query("UPDATE tidings_outbox SET sent_at = now() WHERE seq = ANY($1)")
        .bind(sent)
        .execute(conn)
        .await?;
    Ok(())
}

pub(crate) async fn purge(pool: &PgPool, retention_secs: f64) -> Result<u64, OutboxError> {
    let deleted = sqlx::query(
        "DELETE FROM tidings_outbox WHERE sent_at IS NOT NULL \
         AND sent_at < now() - make_interval(secs => $1)",
    )
    .bind(retention_secs)
    .execute(pool)
    .await?;
    Ok(deleted.rows_affected())
}
