//! The PostgreSQL dedup store on a real server (`TIDINGS_POSTGRES_URL`, or the local server's
//! `postgres` database): the contract every dedup store keeps, ids kept for a new pool (as a
//! restarted consumer makes), the retention, and ids too long to keep refused.

use std::time::Duration;

use sqlx::PgPool;
use tidings_conformance::probe::run_id;
use tidings_core::DedupStore;
use tidings_core::MAX_DEDUP_ID_LEN;
use tidings_sqlx::{PgDedup, migrate};

async fn pool() -> PgPool {
    let url = std::env::var("TIDINGS_POSTGRES_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".to_owned());
    let pool = PgPool::connect(&url)
        .await
        .expect("PostgreSQL is reachable");
    migrate(&pool).await.expect("the migrations run");
    pool
}

#[tokio::test]
#[ignore = "needs PostgreSQL at TIDINGS_POSTGRES_URL (default postgres://postgres@127.0.0.1:5432/postgres): run with --include-ignored, as the test command does"]
async fn keeps_the_dedup_contract() {
    tidings_conformance::dedup::store_contract(&PgDedup::new(pool().await)).await;
}

#[tokio::test]
#[ignore = "needs PostgreSQL at TIDINGS_POSTGRES_URL (default postgres://postgres@127.0.0.1:5432/postgres): run with --include-ignored, as the test command does"]
async fn ids_outlive_the_pool_that_recorded_them() {
    let scope = format!("events.order.created.v1/{}", run_id());
    {
        let first = PgDedup::new(pool().await);
        first.record(&scope, "event-1").await.expect("recorded");
    }
    // A consumer started again has nothing in memory: only the table remembers.
    let again = PgDedup::new(pool().await);
    assert!(again.seen(&scope, "event-1").await.expect("answered"));
    assert!(!again.seen(&scope, "event-2").await.expect("answered"));
}

#[tokio::test]
#[ignore = "needs PostgreSQL at TIDINGS_POSTGRES_URL (default postgres://postgres@127.0.0.1:5432/postgres): run with --include-ignored, as the test command does"]
async fn ids_past_the_retention_count_as_new_and_are_purged() {
    let pool = pool().await;
    let scope = format!("events.order.created.v1/{}", run_id());
    let store = PgDedup::new(pool.clone()).retention(Duration::from_secs(3600));
    store.record(&scope, "old").await.expect("recorded");
    store.record(&scope, "fresh").await.expect("recorded");
    // Age one row past the retention, as two hours would.
    sqlx::query(
        "UPDATE tidings_processed SET processed_at = now() - interval '2 hours' \
         WHERE scope = $1 AND id = 'old'",
    )
    .bind(&scope)
    .execute(&pool)
    .await
    .expect("aged");
    assert!(!store.seen(&scope, "old").await.expect("answered"));
    assert!(store.seen(&scope, "fresh").await.expect("answered"));
    assert!(store.purge().await.expect("purged") >= 1);
    let left: Vec<String> =
        sqlx::query_scalar("SELECT id FROM tidings_processed WHERE scope = $1 ORDER BY id")
            .bind(&scope)
            .fetch_all(&pool)
            .await
            .expect("read");
    assert_eq!(left, ["fresh"]);
    // Recorded again, an id past the retention is remembered anew.
    store.record(&scope, "old").await.expect("recorded");
    assert!(store.seen(&scope, "old").await.expect("answered"));
}

#[tokio::test]
#[ignore = "needs PostgreSQL at TIDINGS_POSTGRES_URL (default postgres://postgres@127.0.0.1:5432/postgres): run with --include-ignored, as the test command does"]
async fn an_id_too_long_to_keep_is_refused_with_its_length() {
    let store = PgDedup::new(pool().await);
    let id = "x".repeat(MAX_DEDUP_ID_LEN + 1);
    let error = store
        .record("scope", &id)
        .await
        .expect_err("refused")
        .to_string();
    assert!(error.contains("1025 bytes"), "{error}");
    assert!(store.seen("scope", &id).await.is_err());
}
