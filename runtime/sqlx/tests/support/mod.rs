//! What the tests of this crate share: a database of their own to work in.

use sqlx::postgres::PgPoolOptions;
use sqlx::{Executor, PgPool};
use tidings_conformance::probe::run_id;
use tidings_sqlx::migrate;

/// A pool whose connections work in a fresh schema of their own, with the tables made, and
/// the schema's name, to drop once the test passed.
pub async fn pool() -> (PgPool, String) {
    let url = std::env::var("TIDINGS_POSTGRES_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".to_owned());
    let schema = format!("tidings_test_{}", run_id());
    let admin = PgPool::connect(&url)
        .await
        .expect("PostgreSQL is reachable");
    admin
        .execute(format!("CREATE SCHEMA {schema}").as_str())
        .await
        .expect("a schema of its own");
    let scoped = schema.clone();
    let pool = PgPoolOptions::new()
        .max_connections(4)
        .after_connect(move |conn, _| {
            let schema = scoped.clone();
            let set = format!("SET search_path TO {schema}");
            Box::pin(async move { conn.execute(set.as_str()).await.map(drop) })
        })
        .connect(&url)
        .await
        .expect("PostgreSQL is reachable");
    migrate(&pool).await.expect("the migrations run");
    (pool, schema)
}

/// Drops the test's schema with its tables.
pub async fn drop_schema(pool: PgPool, schema: &str) {
    pool.execute(format!("DROP SCHEMA {schema} CASCADE").as_str())
        .await
        .expect("dropped");
    pool.close().await;
}
