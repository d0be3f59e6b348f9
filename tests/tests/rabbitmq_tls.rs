//! `amqps://`: events over TLS to a RabbitMQ node of each test's own, with certificates the test
//! makes. The CA comes from code or from `TIDINGS_RABBITMQ_CA_FILE`, a server that verifies peers
//! gets a client certificate, and a server whose certificate the client does not trust is turned
//! away with an error that names RabbitMQ.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use tidings::BrokerError;
use tidings::broker::rabbitmq::{
    CA_FILE_ENV, CLIENT_CERT_ENV, CLIENT_KEY_ENV, RabbitBroker, RabbitConfig,
};
use tidings_tests::certificates::Authority;
use tidings_tests::round_trip::{round_trip, round_trip_process};
use tidings_tests::tls_server::{ClientCerts, TlsServer};

/// Well above a refused handshake; a hang would go on for ever.
const REFUSAL_LIMIT: Duration = Duration::from_secs(30);

const ROUND_TRIP: &str = env!("CARGO_BIN_EXE_round_trip");

async fn connect(config: RabbitConfig) -> Result<RabbitBroker, BrokerError> {
    tokio::time::timeout(REFUSAL_LIMIT, RabbitBroker::connect(config))
        .await
        .unwrap_or_else(|_| panic!("connecting took more than {REFUSAL_LIMIT:?}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs rabbitmq-server (tests/run.sh installs it): run with --include-ignored, as the test command does"]
async fn mutual_tls_presents_the_client_certificate() {
    let authority = Authority::new("tidings test CA");
    let server = TlsServer::rabbitmq(
        authority.ca_file(),
        &authority.server(),
        ClientCerts::Required,
    );
    let client = authority.client();
    let url = format!("amqps://guest:guest@localhost:{}/%2f", server.port());
    let config = RabbitConfig::new(&url)
        .ca_file(authority.ca_file())
        .client_cert(&client.cert, &client.key);
    let broker = connect(config)
        .await
        .expect("connecting with a client certificate");
    round_trip(Arc::new(broker))
        .await
        .expect("an event over mutual TLS");

    let refused = connect(RabbitConfig::new(&url).ca_file(authority.ca_file()))
        .await
        .expect_err("the server requires a client certificate");
    assert!(
        matches!(
            refused,
            BrokerError::Unreachable {
                broker: "rabbitmq",
                ..
            }
        ),
        "{refused:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs rabbitmq-server (tests/run.sh installs it): run with --include-ignored, as the test command does"]
async fn connect_takes_the_tls_files_from_the_environment() {
    let authority = Authority::new("tidings test CA");
    let server = TlsServer::rabbitmq(
        authority.ca_file(),
        &authority.server(),
        ClientCerts::Required,
    );
    let client = authority.client();
    let url = format!("amqps://guest:guest@localhost:{}/%2f", server.port());
    let ca: (&str, &Path) = (CA_FILE_ENV, authority.ca_file());
    let cert: (&str, &Path) = (CLIENT_CERT_ENV, &client.cert);
    let key: (&str, &Path) = (CLIENT_KEY_ENV, &client.key);

    let all = round_trip_process(ROUND_TRIP, &url, &[ca, cert, key]).await;
    assert!(
        all.status.success(),
        "with the CA and the client certificate from the environment: {}",
        String::from_utf8_lossy(&all.stderr)
    );
    assert_eq!(String::from_utf8_lossy(&all.stdout).trim(), "handled");

    // Without the client certificate the server turns the client away.
    let no_client = round_trip_process(ROUND_TRIP, &url, &[ca]).await;
    assert!(
        !no_client.status.success(),
        "connected without a client certificate"
    );
    assert!(
        String::from_utf8_lossy(&no_client.stderr).contains("rabbitmq"),
        "{}",
        String::from_utf8_lossy(&no_client.stderr)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs rabbitmq-server (tests/run.sh installs it): run with --include-ignored, as the test command does"]
async fn a_server_the_client_does_not_trust_is_refused() {
    let trusted = Authority::new("tidings test CA");
    let unknown = Authority::new("unknown CA");
    let server = TlsServer::rabbitmq(unknown.ca_file(), &unknown.server(), ClientCerts::NotAsked);
    let url = format!("amqps://app:s3cret@localhost:{}/%2f", server.port());
    let refused = connect(RabbitConfig::new(&url).ca_file(trusted.ca_file()))
        .await
        .expect_err("a server signed by an authority the client does not trust");
    assert!(
        matches!(
            refused,
            BrokerError::Unreachable {
                broker: "rabbitmq",
                ..
            }
        ),
        "{refused:?}"
    );
    let shown = refused.to_string();
    assert!(
        shown.contains(&format!("amqps://app:***@localhost:{}/%2f", server.port())),
        "{shown}"
    );
    assert!(!shown.contains("s3cret"), "{shown}");
}
