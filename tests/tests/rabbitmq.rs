//! The conformance suite on a real RabbitMQ server.
//!
//! Runs when `TIDINGS_BROKERS` names `rabbitmq`; the server is `TIDINGS_RABBITMQ_URL` (default
//! `amqp://guest:guest@127.0.0.1:5672/%2f`). The restart case runs alone in
//! `rabbitmq_restart.rs`, since restarting the server here would break the cases running beside
//! it.

use std::sync::Arc;

use tidings::broker::rabbitmq::{RabbitBroker, RabbitConfig};
use tidings::{Broker, BrokerError};
use tidings_tests::conformance::BrokerFactory;

/// Connections to the server under test, each a connection of its own.
struct Rabbit(RabbitConfig);

impl BrokerFactory for Rabbit {
    async fn connect(&self) -> Result<Arc<dyn Broker>, BrokerError> {
        Ok(Arc::new(RabbitBroker::connect(self.0.clone()).await?))
    }
}

tidings_tests::conformance_tests!(
    Rabbit(RabbitConfig::from_env().group_expiry(Some(std::time::Duration::from_secs(600)))),
    // Restarting the server runs alone, in rabbitmq_restart.rs.
    not_promised [start_from_oldest, broker_restart],
    #[cfg_attr(
        not(tidings_broker = "rabbitmq"),
        ignore = "not asked to run: set TIDINGS_BROKERS=rabbitmq"
    )]
);

/// Needs no server: nothing listens on port 1.
#[tokio::test]
async fn an_unreachable_server_is_named_without_its_password() {
    let config = RabbitConfig::new("amqp://app:s3cret@127.0.0.1:1/%2f")
        .connect_timeout(std::time::Duration::from_secs(2));
    let error = RabbitBroker::connect(config)
        .await
        .expect_err("nothing listens on port 1");
    let text = error.to_string();
    assert!(
        matches!(
            error,
            BrokerError::Unreachable {
                broker: "rabbitmq",
                ..
            }
        ),
        "{error:?}"
    );
    assert!(text.contains("amqp://app:***@127.0.0.1:1/%2f"), "{text}");
    assert!(!text.contains("s3cret"), "{text}");
}
