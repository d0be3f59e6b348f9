//! The PostgreSQL dedup store.

use std::time::Duration;

use async_trait::async_trait;
use sqlx::PgPool;
use tidings_core::{DedupError, DedupStore};

/// How long a handled id is remembered unless told otherwise: a week.
pub const DEFAULT_RETENTION: Duration = Duration::from_secs(7 * 24 * 60 * 60);

/// The longest event id the store keeps. CloudEvents ids are short (a UUID is 36 bytes); a
/// longer one is refused, so a producer cannot fill the table with large rows.
pub const MAX_ID_LEN: usize = 1024;

/// A [`DedupStore`] in the `tidings_processed` table (made by [`crate::migrate`]): a row per
/// scope and event id, inserted once the handler succeeded. An id older than the retention
/// counts as unseen, and [`PgDedup::purge`] deletes such rows. Cheap to clone.
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

fn checked(id: &str) -> Result<(), DedupError> {
    if id.len() > MAX_ID_LEN {
        return Err(DedupError(Box::from(format!(
            "an event id of {} bytes is longer than the {MAX_ID_LEN} the store keeps",
            id.len()
        ))));
    }
    Ok(())
}

fn failed(doing: &str, e: sqlx::Error) -> DedupError {
    DedupError(Box::from(format!("postgresql: {doing}: {e}")))
}

#[async_trait]
impl DedupStore for PgDedup {
    async fn seen(&self, scope: &str, id: &str) -> Result<bool, DedupError> {
        checked(id)?;
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
        checked(id)?;
        // A row past the retention is taken over, as if the id were new.
        sqlx::query(
            "INSERT INTO tidings_processed (scope, id) VALUES ($1, $2) \
             ON CONFLICT (scope, id) DO UPDATE SET processed_at = now() \
             WHERE tidings_processed.processed_at < now() - make_interval(secs => $3)",
        )
        .bind(scope)
        .bind(id)
        .bind(self.retention.as_secs_f64())
        .execute(&self.pool)
        .await
        .map(drop)
        .map_err(|e| failed("record a handled event id", e))
    }
}
