//! What the two service programs (`order_service`, `notification_service`) share: where the
//! broker is, and connecting to it.

use tidings::adapter::redact;
use tidings::{Bus, ConnectError};

/// The broker both services use unless told otherwise: a NATS server with JetStream on this
/// machine.
pub const DEFAULT_BROKER_URL: &str = "nats://127.0.0.1:4222";

/// The command-line option naming the broker.
#[derive(Clone, Debug, clap::Args)]
pub struct BrokerArgs {
    /// The broker's URL: nats://, amqp://, redis://, mqtt://, kafka://host:port[,host:port]
    /// (with the `kafka` feature) or memory://.
    #[arg(
        long = "broker",
        value_name = "URL",
        env = "TIDINGS_BROKER_URL",
        default_value = DEFAULT_BROKER_URL,
        // The URL may carry a password: never show it in `--help`.
        hide_env_values = true
    )]
    pub url: String,
}

impl BrokerArgs {
    /// The URL with any password replaced by `***`, to print.
    pub fn shown(&self) -> String {
        redact(&self.url)
    }

    /// A bus over the broker, its events' `source` set to `source`.
    pub async fn connect(&self, source: &str) -> Result<Bus, Box<dyn std::error::Error>> {
        match tidings::connect(&self.url).await {
            Ok(broker) => Ok(Bus::from_arc(broker).with_source(source)),
            // The library's advice is for a crate depending on tidings; these programs have a
            // feature of their own for it.
            Err(e @ ConnectError::FeatureDisabled { .. }) => Err(format!(
                "{e}; for these programs: cargo run -p tidings-examples --features kafka ..."
            )
            .into()),
            Err(e) => Err(e.into()),
        }
    }
}
