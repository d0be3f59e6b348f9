//! NATS over TLS: the TLS cases (`tidings_tests::tls_cases`) against a `nats-server` of each
//! test's own, listening only over TLS. Any TLS file makes the client require TLS, whatever the
//! address's scheme.

use std::path::Path;
use std::sync::Arc;

use tidings::broker::nats::{CA_FILE_ENV, CLIENT_CERT_ENV, CLIENT_KEY_ENV, NatsBroker, NatsConfig};
use tidings::{Broker, BrokerError};
use tidings_tests::certificates::Identity;
use tidings_tests::tls_cases::TlsTransport;
use tidings_tests::tls_server::{ClientCerts, TlsServer};

struct Nats;

impl TlsTransport for Nats {
    const NAME: &'static str = "nats";
    const ENV: [&'static str; 3] = [CA_FILE_ENV, CLIENT_CERT_ENV, CLIENT_KEY_ENV];

    fn server(ca: &Path, server: &Identity, clients: ClientCerts) -> TlsServer {
        TlsServer::nats(ca, server, clients)
    }

    fn url(port: u16, credentials: Option<&str>) -> String {
        format!("nats://{}127.0.0.1:{port}", userinfo(credentials))
    }

    async fn connect(
        url: &str,
        ca: &Path,
        client: Option<&Identity>,
    ) -> Result<Arc<dyn Broker>, BrokerError> {
        let mut config = NatsConfig::new(url).ca_file(ca);
        if let Some(client) = client {
            config = config.client_cert(&client.cert, &client.key);
        }
        Ok(Arc::new(NatsBroker::connect(config).await?))
    }
}

/// `user:password@`, or nothing.
fn userinfo(credentials: Option<&str>) -> String {
    credentials.map(|c| format!("{c}@")).unwrap_or_default()
}

tidings_tests::tls_cases!(
    Nats,
    "needs nats-server (tests/run.sh installs it): run with --include-ignored, as the test command does"
);
