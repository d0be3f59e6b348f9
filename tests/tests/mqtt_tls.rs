//! `mqtts://`: the TLS cases (`tidings_tests::tls_cases`) against a `mosquitto` of each test's
//! own, listening only over TLS.

use std::path::Path;
use std::sync::Arc;

use tidings::broker::mqtt::{CA_FILE_ENV, CLIENT_CERT_ENV, CLIENT_KEY_ENV, MqttBroker, MqttConfig};
use tidings::{Broker, BrokerError};
use tidings_tests::certificates::Identity;
use tidings_tests::tls_cases::TlsTransport;
use tidings_tests::tls_server::{ClientCerts, TlsServer};

struct Mqtt;

impl TlsTransport for Mqtt {
    const NAME: &'static str = "mqtt";
    const ENV: [&'static str; 3] = [CA_FILE_ENV, CLIENT_CERT_ENV, CLIENT_KEY_ENV];

    fn server(ca: &Path, server: &Identity, clients: ClientCerts) -> TlsServer {
        TlsServer::mosquitto(ca, server, clients)
    }

    fn url(port: u16, credentials: Option<&str>) -> String {
        format!("mqtts://{}127.0.0.1:{port}", userinfo(credentials))
    }

    async fn connect(
        url: &str,
        ca: &Path,
        client: Option<&Identity>,
    ) -> Result<Arc<dyn Broker>, BrokerError> {
        let mut config = MqttConfig::new(url).ca_file(ca);
        if let Some(client) = client {
            config = config.client_cert(&client.cert, &client.key);
        }
        Ok(Arc::new(MqttBroker::connect(config).await?))
    }
}

/// `user:password@`, or nothing.
fn userinfo(credentials: Option<&str>) -> String {
    credentials.map(|c| format!("{c}@")).unwrap_or_default()
}

tidings_tests::tls_cases!(
    Mqtt,
    "needs mosquitto (tests/run.sh installs it): run with --include-ignored, as the test command does"
);
