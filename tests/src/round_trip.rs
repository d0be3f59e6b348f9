//! One typed event published over a broker and handled by a subscriber of the same bus: the
//! check that a transport carries events end to end.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use tidings::{Broker, Bus, EventId, Received};
use tokio::sync::mpsc;

/// The event the check sends.
#[derive(Clone, PartialEq, prost::Message, tidings::Event)]
#[event(topic = "events.transport.checked.v1")]
pub struct TransportChecked {
    /// Unique to one check, so that nothing else passes for it.
    #[prost(string, tag = "1")]
    pub nonce: String,
}

/// How long the handler may take to see the event.
const PATIENCE: Duration = Duration::from_secs(15);

/// Subscribes to [`TransportChecked`], publishes one, and returns once the handler received
/// that very event; an error says which step failed.
pub async fn round_trip(broker: Arc<dyn Broker>) -> Result<(), String> {
    let bus = Bus::from_arc(broker);
    let (seen, mut handled) = mpsc::unbounded_channel();
    let subscription = bus
        .subscribe(move |event: Received<TransportChecked>| {
            let seen = seen.clone();
            async move { seen.send(event.nonce.clone()) }
        })
        .await
        .map_err(|e| format!("subscribing: {e}"))?;
    let sent = TransportChecked {
        nonce: EventId::new().to_string(),
    };
    bus.publish(&sent)
        .await
        .map_err(|e| format!("publishing: {e}"))?;
    let outcome = match tokio::time::timeout(PATIENCE, handled.recv()).await {
        Ok(Some(nonce)) if nonce == sent.nonce => Ok(()),
        Ok(Some(nonce)) => Err(format!(
            "handled {nonce}, not the event sent ({})",
            sent.nonce
        )),
        Ok(None) => Err("the subscription ended before the event was handled".to_owned()),
        Err(_) => Err(format!("the event was not handled within {PATIENCE:?}")),
    };
    subscription.shutdown().await;
    outcome
}

/// Runs the `round_trip` program (`program`, the test's `CARGO_BIN_EXE_round_trip`) against
/// `url`, with no `TIDINGS_*` variable of this process but those of `vars`, and returns what it
/// printed. A run that takes more than a minute is killed and reported as failed.
pub async fn round_trip_process(
    program: &str,
    url: &str,
    vars: &[(&str, &Path)],
) -> std::process::Output {
    let mut command = tokio::process::Command::new(program);
    command.arg(url).kill_on_drop(true);
    for (name, _) in std::env::vars_os() {
        if name.to_string_lossy().starts_with("TIDINGS_") {
            command.env_remove(name);
        }
    }
    command.envs(vars.iter().copied());
    let limit = Duration::from_secs(60);
    match tokio::time::timeout(limit, command.output()).await {
        Ok(output) => output.unwrap_or_else(|e| panic!("running {program}: {e}")),
        Err(_) => panic!("{program} {url} did not finish within {limit:?}"),
    }
}
