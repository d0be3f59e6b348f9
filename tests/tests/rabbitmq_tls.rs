//! `amqps://`: the TLS cases (`tidings_tests::tls_cases`) against a RabbitMQ node of each
//! test's own, listening only over TLS.

use std::path::Path;
use std::sync::Arc;

use tidings::broker::rabbitmq::{
    CA_FILE_ENV, CLIENT_CERT_ENV, CLIENT_KEY_ENV, RabbitBroker, RabbitConfig,
};
use tidings::{Broker, BrokerError};
use tidings_tests::certificates::Identity;
use tidings_tests::tls_cases::TlsTransport;
use tidings_tests::tls_server::{ClientCerts, TlsServer};

struct Rabbit;

impl TlsTransport for Rabbit {
    const NAME: &'static str = "rabbitmq";
    const ENV: [&'static str; 3] = [CA_FILE_ENV, CLIENT_CERT_ENV, CLIENT_KEY_ENV];

    fn server(ca: &Path, server: &Identity, clients: ClientCerts) -> TlsServer {
        TlsServer::rabbitmq(ca, server, clients)
    }

    fn url(port: u16, credentials: Option<&str>) -> String {
        format!(
            "amqps://{}@localhost:{port}/%2f",
            credentials.unwrap_or("guest:guest")
        )
    }

    async fn connect(
        url: &str,
        ca: &Path,
        client: Option<&Identity>,
    ) -> Result<Arc<dyn Broker>, BrokerError> {
        let mut config = RabbitConfig::new(url).ca_file(ca);
        if let Some(client) = client {
            config = config.client_cert(&client.cert, &client.key);
        }
        Ok(Arc::new(RabbitBroker::connect(config).await?))
    }
}

tidings_tests::tls_cases!(
    Rabbit,
    "needs rabbitmq-server (tests/run.sh installs it): run with --include-ignored, as the test command does"
);
