//! `rediss://`: the TLS cases (`tidings_tests::tls_cases`) against a `redis-server` of each
//! test's own, listening only over TLS.

use std::path::Path;
use std::sync::Arc;

use tidings::broker::redis::{
    CA_FILE_ENV, CLIENT_CERT_ENV, CLIENT_KEY_ENV, RedisBroker, RedisConfig,
};
use tidings::{Broker, BrokerError};
use tidings_tests::certificates::Identity;
use tidings_tests::tls_cases::TlsTransport;
use tidings_tests::tls_server::{ClientCerts, TlsServer};

struct Redis;

impl TlsTransport for Redis {
    const NAME: &'static str = "redis";
    const ENV: [&'static str; 3] = [CA_FILE_ENV, CLIENT_CERT_ENV, CLIENT_KEY_ENV];

    fn server(ca: &Path, server: &Identity, clients: ClientCerts) -> TlsServer {
        TlsServer::redis(ca, server, clients)
    }

    fn url(port: u16, credentials: Option<&str>) -> String {
        format!("rediss://{}127.0.0.1:{port}", userinfo(credentials))
    }

    async fn connect(
        url: &str,
        ca: &Path,
        client: Option<&Identity>,
    ) -> Result<Arc<dyn Broker>, BrokerError> {
        let mut config = RedisConfig::new(url).ca_file(ca);
        if let Some(client) = client {
            config = config.client_cert(&client.cert, &client.key);
        }
        Ok(Arc::new(RedisBroker::connect(config).await?))
    }
}

/// `user:password@`, or nothing.
fn userinfo(credentials: Option<&str>) -> String {
    credentials.map(|c| format!("{c}@")).unwrap_or_default()
}

tidings_tests::tls_cases!(
    Redis,
    "needs redis-server (tests/run.sh installs it): run with --include-ignored, as the test command does"
);
