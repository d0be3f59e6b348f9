//! `mqtts://`: events over TLS to a `mosquitto` of each test's own, with certificates the test
//! makes. The CA comes from code or from `TIDINGS_MQTT_CA_FILE`, a broker that requires a client
//! certificate gets one, and a broker whose certificate the client does not trust is turned
//! away with an error that names MQTT, at once.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use tidings::BrokerError;
use tidings::broker::mqtt::{CA_FILE_ENV, CLIENT_CERT_ENV, CLIENT_KEY_ENV, MqttBroker, MqttConfig};
use tidings_tests::certificates::Authority;
use tidings_tests::round_trip::{round_trip, round_trip_process};
use tidings_tests::tls_server::{ClientCerts, TlsServer};

/// Well above a refused handshake; a hang would go on for ever.
const REFUSAL_LIMIT: Duration = Duration::from_secs(30);

const ROUND_TRIP: &str = env!("CARGO_BIN_EXE_round_trip");

async fn connect(config: MqttConfig) -> Result<MqttBroker, BrokerError> {
    tokio::time::timeout(REFUSAL_LIMIT, MqttBroker::connect(config))
        .await
        .unwrap_or_else(|_| panic!("connecting took more than {REFUSAL_LIMIT:?}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs mosquitto (tests/run.sh installs it): run with --include-ignored, as the test command does"]
async fn an_event_goes_over_mqtts_with_the_ca_from_code() {
    let authority = Authority::new("tidings test CA");
    let server = TlsServer::mosquitto(
        authority.ca_file(),
        &authority.server(),
        ClientCerts::NotAsked,
    );
    let config = MqttConfig::new(format!("mqtts://127.0.0.1:{}", server.port()))
        .ca_file(authority.ca_file());
    let broker = connect(config).await.expect("connecting over TLS");
    round_trip(Arc::new(broker))
        .await
        .expect("an event over mqtts://");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs mosquitto (tests/run.sh installs it): run with --include-ignored, as the test command does"]
async fn mutual_tls_presents_the_client_certificate() {
    let authority = Authority::new("tidings test CA");
    let server = TlsServer::mosquitto(
        authority.ca_file(),
        &authority.server(),
        ClientCerts::Required,
    );
    let client = authority.client();
    let url = format!("mqtts://127.0.0.1:{}", server.port());
    let config = MqttConfig::new(&url)
        .ca_file(authority.ca_file())
        .client_cert(&client.cert, &client.key);
    let broker = connect(config)
        .await
        .expect("connecting with a client certificate");
    round_trip(Arc::new(broker))
        .await
        .expect("an event over mutual TLS");

    let refused = connect(MqttConfig::new(&url).ca_file(authority.ca_file()))
        .await
        .expect_err("the broker requires a client certificate");
    assert!(
        matches!(refused, BrokerError::Unreachable { broker: "mqtt", .. }),
        "{refused:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs mosquitto (tests/run.sh installs it): run with --include-ignored, as the test command does"]
async fn connect_takes_the_tls_files_from_the_environment() {
    let authority = Authority::new("tidings test CA");
    let server = TlsServer::mosquitto(
        authority.ca_file(),
        &authority.server(),
        ClientCerts::Required,
    );
    let client = authority.client();
    let url = format!("mqtts://localhost:{}", server.port());
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

    // Each variable is what made it work: without the CA the system's roots are trusted,
    // which do not know the test's authority; without the client certificate the broker
    // turns the client away.
    let no_ca = round_trip_process(ROUND_TRIP, &url, &[cert, key]).await;
    let shown = String::from_utf8_lossy(&no_ca.stderr);
    assert!(!no_ca.status.success(), "trusted without the CA");
    assert!(
        shown.contains("mqtt") && shown.contains("certificate"),
        "{shown}"
    );
    let no_client = round_trip_process(ROUND_TRIP, &url, &[ca]).await;
    let shown = String::from_utf8_lossy(&no_client.stderr);
    assert!(
        !no_client.status.success(),
        "connected without a client certificate"
    );
    assert!(shown.contains("mqtt"), "{shown}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs mosquitto (tests/run.sh installs it): run with --include-ignored, as the test command does"]
async fn a_server_the_client_does_not_trust_is_refused() {
    let trusted = Authority::new("tidings test CA");
    let unknown = Authority::new("unknown CA");
    let server = TlsServer::mosquitto(unknown.ca_file(), &unknown.server(), ClientCerts::NotAsked);
    let url = format!("mqtts://app:s3cret@127.0.0.1:{}", server.port());
    let refused = connect(MqttConfig::new(&url).ca_file(trusted.ca_file()))
        .await
        .expect_err("a broker signed by an authority the client does not trust");
    assert!(
        matches!(refused, BrokerError::Unreachable { broker: "mqtt", .. }),
        "{refused:?}"
    );
    let shown = refused.to_string();
    assert!(shown.contains("certificate"), "{shown}");
    assert!(
        shown.contains(&format!("mqtts://app:***@127.0.0.1:{}", server.port())),
        "{shown}"
    );
    assert!(!shown.contains("s3cret"), "{shown}");
}
