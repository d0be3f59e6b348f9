//! The PostgreSQL dedup store.

use std::time::Duration;

use async_trait::async_trait;
use sqlx::{PgConnection, PgPool};
use tidings_core::{DedupError, DedupStore, Event, Received, check_dedup_id, group_scope};

/// How long a handled id is remembered unless told otherwise: a week.
pub const DEFAULT_RETENTION: Duration = Duration::from_secs(7 * 24 * 60 * 60);

/// A [`DedupStore`] in the `tidings_processed` table (made by [`crate::migrate`]): a row per
/// scope and event id, inserted once the handler succeeded. An id older than the retention
/// counts as unseen, and [`PgDedup::purge`] deletes such rows. Ids longer than
/// [`MAX_DEDUP_ID_LEN`](tidings_core::MAX_DEDUP_ID_LEN) are refused. Cheap to clone.
#[derive(Clone, Debug)]
pub struct PgDedup {
    pool: PgPool,
    retention: Duration,
}

impl PgDedup {
    /// A store on `pool`, remembering ids for [`DEFAULT_RETENTION`]. Run [`crate::migrate`]
    /// once first.
    pub fn new(pool: PgPool) -> Self {
        PgDedup {
            pool,
            retention: DEFAULT_RETENTION,
        }
    }

    /// How long an id is remembered.
    pub fn retention(mut self, retention: Duration) -> Self {
        self.retention = retention;
        self
    }

    /// Records `event` as handled by `group` through `conn`, in the handler's own transaction
    /// (the inbox): the handler's writes and this row are committed together or not at all.
    /// A subscription in `group` deduplicating with this store then skips the event when the
    /// broker delivers it again (after a crash between the commit and the ack, say), so its
    /// effect is applied once; the record the subscription makes after the handler returns
    /// finds the row there already.
    ///
    /// ```ignore
    /// let mut tx = pool.begin().await?;
    /// sqlx::query("UPDATE stock SET reserved = reserved + 1 WHERE sku = $1")
    ///     .bind(&event.sku)
    ///     .execute(&mut *tx)
    ///     .await?;
    /// store.record_in(&mut tx, "reservations", &event).await?;
    /// tx.commit().await?;
    /// ```
    pub async fn record_in<E: Event>(
        &self,
        conn: &mut PgConnection,
        group: &str,
        event: &Received<E>,
    ) -> Result<(), DedupError> {
        let id = &event.envelope().id;
        check_dedup_id(id)?;
        insert(conn, &group_scope(E::TOPIC, group), id, self.retention).await
    }

    /// Deletes the rows older than the retention; returns how many. Run it from time to time
    /// (a daily job, a background task): nothing deletes them otherwise.
    pub async fn purge(&self) -> Result<u64, sqlx::Error> {
        let deleted = sqlx::query(
            "DELETE FROM tidings_processed WHERE processed_at < now() - make_interval(secs => $1)",
        )
        .bind(self.retention.as_secs_f64())
        .execute(&self.pool)
        .await?;
        Ok(deleted.rows_affected())
    }
}

fn failed(doing: &str, e: sqlx::Error) -> DedupError {
    DedupError(Box::from(format!("postgresql: {doing}: {e}")))
}

#[async_trait]
impl DedupStore for PgDedup {
    async fn seen(&self, scope: &str, id: &str) -> Result<bool, DedupError> {
        check_dedup_id(id)?;
        sqlx::query_scalar::<_, bool>(
            "SELECT EXISTS (SELECT 1 FROM tidings_processed WHERE scope = $1 AND id = $2 \
             AND processed_at >= now() - make_interval(secs => $3))",
        )
        .bind(scope)
        .bind(id)
        .bind(self.retention.as_secs_f64())
        .fetch_one(&self.pool)
        .await
        .map_err(|e| failed("look up a handled event id", e))
    }

    async fn record(&self, scope: &str, id: &str) -> Result<(), DedupError> {
        check_dedup_id(id)?;
        let mut conn = self
            .pool
            .acquire()
            .await
            .map_err(|e| failed("reach the database", e))?;
        insert(&mut conn, scope, id, self.retention).await
    }
}

/// Inserts the row of `id` in `scope`; a row past the retention is taken over, as if the id
/// were new.
async fn insert(
    conn: &mut PgConnection,
    scope: &str,
    id: &str,
    retention: Duration,
) -> Result<(), DedupError> {
    sqlx::query(
        "INSERT INTO tidings_processed (scope, id) VALUES ($1, $2) \
         ON CONFLICT (scope, id) DO UPDATE SET processed_at = now() \
         WHERE tidings_processed.processed_at < now() - make_interval(secs => $3)",
    )
    .bind(scope)
    .bind(id)
    .bind(retention.as_secs_f64())
    .execute(conn)
    .await
    .map(drop)
    .map_err(|e| failed("record a handled event id", e))
}
