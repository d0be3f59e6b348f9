//! The conformance suite on a real NATS server, in JetStream mode and in core mode.
//!
//! Runs when `TIDINGS_BROKERS` names `nats`; the server is `TIDINGS_NATS_URL` (default
//! `nats://127.0.0.1:4222`). The restart case runs alone in `nats_restart.rs`, since restarting
//! the server here would break the cases running beside it.

use std::sync::Arc;
use std::time::Duration;

use tidings::broker::nats::{NatsBroker, NatsConfig, NatsMode};
use tidings::{Broker, BrokerError};
use tidings_tests::conformance::BrokerFactory;

/// Connections to the server under test, each a client of its own.
struct Nats(NatsConfig);

impl Nats {
    fn new(mode: NatsMode) -> Self {
        // Test topics and groups are unique per run: they need not outlive it by much.
        Nats(
            NatsConfig::from_env()
                .mode(mode)
                .max_age(Duration::from_secs(3600))
                .ack_wait(Duration::from_secs(2))
                .group_expiry(Some(Duration::from_secs(600))),
        )
    }
}

impl BrokerFactory for Nats {
    async fn connect(&self) -> Result<Arc<dyn Broker>, BrokerError> {
        Ok(Arc::new(NatsBroker::connect(self.0.clone()).await?))
    }
}

mod jetstream {
    use super::*;

    tidings_tests::conformance_tests!(
        Nats::new(NatsMode::JetStream),
        // Restarting the server runs alone, in nats_restart.rs.
        not_promised [broker_restart],
        #[cfg_attr(
            not(tidings_broker = "nats"),
            ignore = "not asked to run: set TIDINGS_BROKERS=nats"
        )]
    );
}

mod core {
    use super::*;

    tidings_tests::conformance_tests!(
        Nats::new(NatsMode::Core),
        not_promised [
            groups,
            start_from_oldest,
            redelivery_after_consumer_dies,
            close_and_resubscribe,
            broker_restart,
        ],
        #[cfg_attr(
            not(tidings_broker = "nats"),
            ignore = "not asked to run: set TIDINGS_BROKERS=nats"
        )]
    );
}

/// Needs no server: nothing listens on port 1.
#[tokio::test]
async fn an_unreachable_server_is_named_without_its_password() {
    let config =
        NatsConfig::new("nats://app:s3cret@127.0.0.1:1").connect_timeout(Duration::from_secs(2));
    let error = NatsBroker::connect(config)
        .await
        .expect_err("nothing listens on port 1");
    let text = error.to_string();
    assert!(
        matches!(error, BrokerError::Unreachable { broker: "nats", .. }),
        "{error:?}"
    );
    assert!(text.contains("nats://app:***@127.0.0.1:1"), "{text}");
    assert!(!text.contains("s3cret"), "{text}");
}
