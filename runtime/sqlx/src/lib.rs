//! tidings on SQL databases through sqlx: PostgreSQL, and SQLite with the `sqlite` feature.
//!
//! - [`Outbox`] stores an event in the caller's transaction, so that it exists if and only if
//!   the change that caused it was committed, and a [`Relay`] publishes what is stored, in
//!   order, marking each event sent once the broker confirmed it.
//! - [`OutboxFallback`] stores, in the same outbox, the publishes a bus's broker did not take
//!   (`Bus::with_fallback`), for the relay to publish once the broker is back; on SQLite
//!   ([`open_sqlite`]) that needs no database server.
//! - [`PgDedup`] is a dedup store in PostgreSQL: the ids a consumer handled, in a table that
//!   every replica shares and that outlives a restart, kept for a retention and purged after it.
//!
//! Their tables are made by the migrations this crate ships ([`migrate`]).

#![forbid(unsafe_code)]
#![warn(missing_docs)]

mod dedup;
mod fallback;
mod outbox;
mod pool;
mod postgres;
mod relay;
#[cfg(feature = "sqlite")]
mod sqlite;

pub use dedup::{DEFAULT_RETENTION, PgDedup};
pub use fallback::OutboxFallback;
pub use outbox::{Outbox, OutboxError};
pub use pool::{OutboxConnection, OutboxPool};
pub use relay::Relay;
#[cfg(feature = "sqlite")]
pub use sqlite::open_sqlite;
pub use sqlx;

use sqlx::migrate::MigrateError;

/// Creates or updates the tables this crate uses, by the migrations it ships under
/// `migrations/`: on PostgreSQL `tidings_outbox` and `tidings_processed`, on SQLite
/// `tidings_outbox`. Takes a `PgPool` or a `SqlitePool`.
///
/// They are recorded in sqlx's `_sqlx_migrations` table beside any of the application's own:
/// migrations there that this crate does not know are left alone.
pub async fn migrate<P>(pool: &P) -> Result<(), MigrateError>
where
    P: Clone + Into<OutboxPool>,
{
    match pool.clone().into() {
        OutboxPool::Postgres(pool) => {
            let mut migrator = sqlx::migrate!("./migrations/postgres");
            migrator.set_ignore_missing(true);
            migrator.run(&pool).await
        }
        #[cfg(feature = "sqlite")]
        OutboxPool::Sqlite(pool) => {
            let mut migrator = sqlx::migrate!("./migrations/sqlite");
            migrator.set_ignore_missing(true);
            migrator.run(&pool).await
        }
    }
}
