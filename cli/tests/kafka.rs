//! The broker verbs against Kafka (`TIDINGS_KAFKA_BROKERS`, by default `127.0.0.1:9092`). Ignored by a plain
//! `cargo test`; with `--include-ignored`, as the test command runs them, a server that cannot
//! be reached fails them.

mod support;

use support::*;

fn url() -> String {
    let brokers = tidings::adapter::address_from_env(
        tidings::broker::kafka::BROKERS_ENV,
        tidings::broker::kafka::DEFAULT_BROKERS,
    );
    format!("kafka://{brokers}")
}

#[tokio::test(flavor = "multi_thread")]
#[ignore = "needs Kafka at TIDINGS_KAFKA_BROKERS (default 127.0.0.1:9092): run with --include-ignored"]
async fn dead_letters_are_listed_then_replayed_once_each() {
    dead_letters_listed_and_replayed::<KafkaDlq>(&url()).await;
}

#[tokio::test(flavor = "multi_thread")]
#[ignore = "needs Kafka at TIDINGS_KAFKA_BROKERS (default 127.0.0.1:9092): run with --include-ignored"]
async fn tail_prints_a_typed_event_as_canonical_json() {
    insta::assert_snapshot!(tail_prints_a_typed_event::<KafkaTail>(&url()).await);
}

#[tokio::test(flavor = "multi_thread")]
#[ignore = "needs Kafka at TIDINGS_KAFKA_BROKERS (default 127.0.0.1:9092): run with --include-ignored"]
async fn published_json_reaches_a_typed_handler_and_a_bad_field_is_named() {
    publish_reaches_a_typed_handler::<KafkaPublish>(&url()).await;
}

#[tokio::test(flavor = "multi_thread")]
#[ignore = "needs Kafka at TIDINGS_KAFKA_BROKERS (default 127.0.0.1:9092): run with --include-ignored"]
async fn a_replay_killed_halfway_then_run_again_loses_nothing() {
    replay_killed_halfway_loses_nothing::<KafkaKill>(&url()).await;
}
