//! The Redis dedup store on a real server (`TIDINGS_REDIS_URL`, or 127.0.0.1:6379): the
//! contract every dedup store keeps, ids kept by the server for another connection (as a
//! restarted consumer makes), the TTL set on each key, and ids too long to keep refused.

use std::time::Duration;

use tidings_conformance::probe::run_id;
use tidings_core::DedupStore;
use tidings_core::MAX_DEDUP_ID_LEN;
use tidings_redis::{RedisBroker, RedisConfig, RedisDedup};

async fn broker() -> RedisBroker {
    RedisBroker::connect(RedisConfig::from_env())
        .await
        .expect("Redis is reachable")
}

#[tokio::test]
#[ignore = "needs Redis at TIDINGS_REDIS_URL (default redis://127.0.0.1:6379): run with --include-ignored, as the test command does"]
async fn keeps_the_dedup_contract() {
    let store = RedisDedup::connect(RedisConfig::from_env())
        .await
        .expect("Redis is reachable");
    tidings_conformance::dedup::store_contract(&store).await;
}

#[tokio::test]
#[ignore = "needs Redis at TIDINGS_REDIS_URL (default redis://127.0.0.1:6379): run with --include-ignored, as the test command does"]
async fn ids_outlive_the_connection_that_recorded_them() {
    let scope = format!("events.order.created.v1/{}", run_id());
    {
        let first = RedisDedup::on(&broker().await);
        first.record(&scope, "event-1").await.expect("recorded");
    }
    // A consumer started again has nothing in memory: only the server remembers.
    let again = RedisDedup::on(&broker().await);
    assert!(again.seen(&scope, "event-1").await.expect("answered"));
    assert!(!again.seen(&scope, "event-2").await.expect("answered"));
}

#[tokio::test]
#[ignore = "needs Redis at TIDINGS_REDIS_URL (default redis://127.0.0.1:6379): run with --include-ignored, as the test command does"]
async fn each_key_expires_after_the_ttl_and_a_second_record_keeps_the_first_expiry() {
    let broker = broker().await;
    let prefix = format!("tests:dedup:{}:", run_id());
    let store = RedisDedup::on(&broker)
        .prefix(&prefix)
        .ttl(Duration::from_secs(60));
    store.record("scope", "event-1").await.expect("recorded");
    let key = format!("{prefix}5:scope:event-1");
    let client = tidings_redis::redis::Client::open(broker.config().url()).expect("a Redis URL");
    let mut conn = client
        .get_multiplexed_async_connection()
        .await
        .expect("connected");
    let ttl: i64 = tidings_redis::redis::cmd("PTTL")
        .arg(&key)
        .query_async(&mut conn)
        .await
        .expect("PTTL");
    assert!(
        (50_000..=60_000).contains(&ttl),
        "{key} expires in {ttl} ms, not about 60 s"
    );
    let longer = RedisDedup::on(&broker)
        .prefix(&prefix)
        .ttl(Duration::from_secs(3600));
    longer.record("scope", "event-1").await.expect("recorded");
    let ttl: i64 = tidings_redis::redis::cmd("PTTL")
        .arg(&key)
        .query_async(&mut conn)
        .await
        .expect("PTTL");
    assert!(
        ttl <= 60_000,
        "a second record moved the expiry to {ttl} ms"
    );
}

#[tokio::test]
#[ignore = "needs Redis at TIDINGS_REDIS_URL (default redis://127.0.0.1:6379): run with --include-ignored, as the test command does"]
async fn an_id_too_long_to_keep_is_refused_with_its_length() {
    let store = RedisDedup::on(&broker().await);
    let id = "x".repeat(MAX_DEDUP_ID_LEN + 1);
    let error = store
        .record("scope", &id)
        .await
        .expect_err("refused")
        .to_string();
    assert!(error.contains("1025 bytes"), "{error}");
    assert!(store.seen("scope", &id).await.is_err());
}
