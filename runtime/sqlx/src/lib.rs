//! tidings on SQL databases through sqlx.
//!
//! [`PgDedup`] is a dedup store in PostgreSQL: the ids a consumer handled, in a table that
//! every replica shares and that outlives a restart, kept for a retention and purged after it.
//! Its table is made by the migrations this crate ships ([`migrate`]).

#![forbid(unsafe_code)]
#![warn(missing_docs)]

mod dedup;

pub use dedup::{DEFAULT_RETENTION, MAX_ID_LEN, PgDedup};
pub use sqlx;

use sqlx::PgPool;
use sqlx::migrate::MigrateError;

/// Creates or updates the tables this crate uses (`tidings_processed`), by the migrations it
/// ships under `migrations/`.
///
/// They are recorded in sqlx's `_sqlx_migrations` table beside any of the application's own:
/// migrations there that this crate does not know are left alone.
pub async fn migrate(pool: &PgPool) -> Result<(), MigrateError> {
    let mut migrator = sqlx::migrate!("./migrations");
    migrator.set_ignore_missing(true);
    migrator.run(pool).await
}
