//! tidings on SQL databases through sqlx.
//!
//! - [`Outbox`] stores an event in the caller's transaction, so that it exists if and only if
//!   the change that caused it was committed, and a [`Relay`] publishes what is stored, in
//!   order, marking each event sent once the broker confirmed it.
//! - [`PgDedup`] is a dedup store in PostgreSQL: the ids a consumer handled, in a table that
//!   every replica shares and that outlives a restart, kept for a retention and purged after it.
//!
//! Their tables are made by the migrations this crate ships ([`migrate`]).

#![forbid(unsafe_code)]
#![warn(missing_docs)]

mod dedup;
mod outbox;

pub use dedup::{DEFAULT_RETENTION, PgDedup};
pub use outbox::{Outbox, OutboxError, Relay};
pub use sqlx;

use sqlx::PgPool;
use sqlx::migrate::MigrateError;

/// Creates or updates the tables this crate uses (`tidings_outbox`, `tidings_processed`), by the migrations it
/// ships under `migrations/`.
///
/// They are recorded in sqlx's `_sqlx_migrations` table beside any of the application's own:
/// migrations there that this crate does not know are left alone.
pub async fn migrate(pool: &PgPool) -> Result<(), MigrateError> {
    let mut migrator = sqlx::migrate!("./migrations");
    migrator.set_ignore_missing(true);
    migrator.run(pool).await
}
