//! NATS over TLS: events to a `nats-server` of each test's own, with certificates the test
//! makes. The CA comes from code or from `TIDINGS_NATS_CA_FILE`, a server that verifies clients
//! gets a client certificate, and a server whose certificate the client does not trust is turned
//! away with an error that names NATS.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use tidings::BrokerError;
use tidings::broker::nats::{CA_FILE_ENV, CLIENT_CERT_ENV, CLIENT_KEY_ENV, NatsBroker, NatsConfig};
use tidings_tests::certificates::Authority;
use tidings_tests::round_trip::{round_trip, round_trip_process};
use tidings_tests::tls_server::{ClientCerts, TlsServer};

/// Well above a refused handshake; a hang would go on for ever.
const REFUSAL_LIMIT: Duration = Duration::from_secs(30);

const ROUND_TRIP: &str = env!("CARGO_BIN_EXE_round_trip");

async fn connect(config: NatsConfig) -> Result<NatsBroker, BrokerError> {
    tokio::time::timeout(REFUSAL_LIMIT, NatsBroker::connect(config))
        .await
        .unwrap_or_else(|_| panic!("connecting took more than {REFUSAL_LIMIT:?}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs nats-server (tests/run.sh installs it): run with --include-ignored, as the test command does"]
async fn mutual_tls_presents_the_client_certificate() {
    let authority = Authority::new("tidings test CA");
    let server = TlsServer::nats(
        authority.ca_file(),
        &authority.server(),
        ClientCerts::Required,
    );
    let client = authority.client();
    let url = format!("nats://127.0.0.1:{}", server.port());
    let config = NatsConfig::new(&url)
        .ca_file(authority.ca_file())
        .client_cert(&client.cert, &client.key);
    let broker = connect(config)
        .await
        .expect("connecting with a client certificate");
    round_trip(Arc::new(broker))
        .await
        .expect("an event over mutual TLS");

    let refused = connect(NatsConfig::new(&url).ca_file(authority.ca_file()))
        .await
        .expect_err("the server requires a client certificate");
    assert!(
        matches!(refused, BrokerError::Unreachable { broker: "nats", .. }),
        "{refused:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs nats-server (tests/run.sh installs it): run with --include-ignored, as the test command does"]
async fn connect_takes_the_tls_files_from_the_environment() {
    let authority = Authority::new("tidings test CA");
    let server = TlsServer::nats(
        authority.ca_file(),
        &authority.server(),
        ClientCerts::Required,
    );
    let client = authority.client();
    let url = format!("nats://localhost:{}", server.port());
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
        String::from_utf8_lossy(&no_client.stderr).contains("nats"),
        "{}",
        String::from_utf8_lossy(&no_client.stderr)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs nats-server (tests/run.sh installs it): run with --include-ignored, as the test command does"]
async fn a_server_the_client_does_not_trust_is_refused() {
    let trusted = Authority::new("tidings test CA");
    let unknown = Authority::new("unknown CA");
    let server = TlsServer::nats(unknown.ca_file(), &unknown.server(), ClientCerts::NotAsked);
    let url = format!("nats://app:s3cret@127.0.0.1:{}", server.port());
    let refused = connect(NatsConfig::new(&url).ca_file(trusted.ca_file()))
        .await
        .expect_err("a server signed by an authority the client does not trust");
    assert!(
        matches!(refused, BrokerError::Unreachable { broker: "nats", .. }),
        "{refused:?}"
    );
    let shown = refused.to_string();
    assert!(
        shown.contains(&format!("nats://app:***@127.0.0.1:{}", server.port())),
        "{shown}"
    );
    assert!(!shown.contains("s3cret"), "{shown}");
}
