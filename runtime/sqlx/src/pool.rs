//! The databases an outbox lives in, and the connections an event is stored through.

use sqlx::{PgConnection, PgPool, Postgres, Transaction};
#[cfg(feature = "sqlite")]
use sqlx::{Sqlite, SqliteConnection, SqlitePool};

/// The database of an outbox: PostgreSQL, or SQLite with the `sqlite` feature. Made from a
/// pool with `.into()`, which the functions of this crate do for you.
#[derive(Clone, Debug)]
pub enum OutboxPool {
    /// PostgreSQL: several relays may run at once, one publishing at a time.
    Postgres(PgPool),
    /// SQLite: one relay per database.
    #[cfg(feature = "sqlite")]
    Sqlite(SqlitePool),
}

impl From<PgPool> for OutboxPool {
    fn from(pool: PgPool) -> Self {
        OutboxPool::Postgres(pool)
    }
}

#[cfg(feature = "sqlite")]
impl From<SqlitePool> for OutboxPool {
    fn from(pool: SqlitePool) -> Self {
        OutboxPool::Sqlite(pool)
    }
}

/// A connection of one of the supported databases.
#[doc(hidden)]
pub enum Connection<'c> {
    /// PostgreSQL.
    Postgres(&'c mut PgConnection),
    /// SQLite.
    #[cfg(feature = "sqlite")]
    Sqlite(&'c mut SqliteConnection),
}

/// What [`Outbox::publish`](crate::Outbox::publish) stores an event through: a transaction
/// (`&mut tx`) or a connection of PostgreSQL or, with the `sqlite` feature, SQLite.
pub trait OutboxConnection: sealed::Sealed + Send {
    /// The connection underneath.
    #[doc(hidden)]
    fn connection(&mut self) -> Connection<'_>;
}

mod sealed {
    pub trait Sealed {}
}

macro_rules! connections {
    ($variant:ident, $db:ty, $conn:ty) => {
        impl sealed::Sealed for $conn {}
        impl OutboxConnection for $conn {
            fn connection(&mut self) -> Connection<'_> {
                Connection::$variant(self)
            }
        }
        impl sealed::Sealed for Transaction<'_, $db> {}
        impl OutboxConnection for Transaction<'_, $db> {
            fn connection(&mut self) -> Connection<'_> {
                Connection::$variant(&mut **self)
            }
        }
    };
}

connections!(Postgres, Postgres, PgConnection);
#[cfg(feature = "sqlite")]
connections!(Sqlite, Sqlite, SqliteConnection);
