//! The TLS cases every adapter that speaks TLS passes, against a server of the test's own
//! ([`TlsServer`]) with certificates the test makes ([`Authority`]): an event over TLS with the
//! CA from code; mutual TLS, and a client without a certificate turned away; the files from the
//! adapter's environment variables through `tidings::connect`; and a server whose certificate
//! the client does not trust refused at once with an error that names the broker and hides the
//! password. [`tls_cases!`](crate::tls_cases) writes them as tests for one adapter.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use tidings::{Broker, BrokerError};

use crate::certificates::{Authority, Identity};
use crate::round_trip::{round_trip, round_trip_process};
use crate::tls_server::{ClientCerts, TlsServer};

/// Well above a refused handshake with its retries; a hang would go on for ever.
const REFUSAL_LIMIT: Duration = Duration::from_secs(30);

/// One adapter's side of the cases.
pub trait TlsTransport {
    /// The broker's name in errors (`BrokerError::Unreachable::broker`).
    const NAME: &'static str;
    /// The adapter's variables for the CA file, the client certificate and its key.
    const ENV: [&'static str; 3];
    /// Starts a server of the test's own listening over TLS only.
    fn server(ca: &Path, server: &Identity, clients: ClientCerts) -> TlsServer;
    /// The TLS address of a server on `port` of this machine, with `user:password` if given.
    fn url(port: u16, credentials: Option<&str>) -> String;
    /// Connects to `url` trusting `ca`, presenting `client` if given.
    fn connect(
        url: &str,
        ca: &Path,
        client: Option<&Identity>,
    ) -> impl Future<Output = Result<Arc<dyn Broker>, BrokerError>> + Send;
}

async fn connect<T: TlsTransport>(
    url: &str,
    ca: &Path,
    client: Option<&Identity>,
) -> Result<Arc<dyn Broker>, BrokerError> {
    tokio::time::timeout(REFUSAL_LIMIT, T::connect(url, ca, client))
        .await
        .unwrap_or_else(|_| panic!("connecting took more than {REFUSAL_LIMIT:?}"))
}

/// A new authority, and a server of `T` it signed.
fn signed_server<T: TlsTransport>(clients: ClientCerts) -> (Authority, TlsServer) {
    let authority = Authority::new("tidings test CA");
    let server = T::server(authority.ca_file(), &authority.server(), clients);
    (authority, server)
}

fn assert_names<T: TlsTransport>(refused: &BrokerError) {
    assert!(
        matches!(refused, BrokerError::Unreachable { broker, .. } if *broker == T::NAME),
        "{refused:?}"
    );
}

/// An event goes over TLS to a server signed by the CA given in code.
pub async fn ca_from_code<T: TlsTransport>() {
    let (authority, server) = signed_server::<T>(ClientCerts::NotAsked);
    let broker = connect::<T>(&T::url(server.port(), None), authority.ca_file(), None)
        .await
        .expect("connecting over TLS");
    round_trip(broker).await.expect("an event over TLS");
}

/// A server that requires a client certificate gets one, and turns a client without one away.
pub async fn mutual_tls<T: TlsTransport>() {
    let (authority, server) = signed_server::<T>(ClientCerts::Required);
    let client = authority.client();
    let url = T::url(server.port(), None);
    let broker = connect::<T>(&url, authority.ca_file(), Some(&client))
        .await
        .expect("connecting with a client certificate");
    round_trip(broker).await.expect("an event over mutual TLS");

    let refused = connect::<T>(&url, authority.ca_file(), None)
        .await
        .err()
        .expect("the server requires a client certificate");
    assert_names::<T>(&refused);
}

/// `tidings::connect` takes the three files from the adapter's variables, and each one is
/// what made it work: without the CA the system's roots do not know the test's authority;
/// without the client certificate the server turns the client away.
pub async fn files_from_env<T: TlsTransport>(round_trip_program: &str) {
    let (authority, server) = signed_server::<T>(ClientCerts::Required);
    let client = authority.client();
    let url = T::url(server.port(), None);
    let [ca_env, cert_env, key_env] = T::ENV;
    let ca: (&str, &Path) = (ca_env, authority.ca_file());
    let cert: (&str, &Path) = (cert_env, &client.cert);
    let key: (&str, &Path) = (key_env, &client.key);

    let all = round_trip_process(round_trip_program, &url, &[ca, cert, key]).await;
    assert!(
        all.status.success(),
        "with the CA and the client certificate from the environment: {}",
        String::from_utf8_lossy(&all.stderr)
    );
    assert_eq!(String::from_utf8_lossy(&all.stdout).trim(), "handled");

    let no_ca = round_trip_process(round_trip_program, &url, &[cert, key]).await;
    let shown = String::from_utf8_lossy(&no_ca.stderr);
    assert!(!no_ca.status.success(), "trusted without the CA");
    assert!(
        shown.contains(T::NAME) && shown.contains("certificate"),
        "{shown}"
    );
    let no_client = round_trip_process(round_trip_program, &url, &[ca]).await;
    let shown = String::from_utf8_lossy(&no_client.stderr);
    assert!(
        !no_client.status.success(),
        "connected without a client certificate"
    );
    assert!(shown.contains(T::NAME), "{shown}");
}

/// A server signed by an authority the client does not trust is refused at once, with an
/// error that names the broker and its address without the password.
pub async fn untrusted_server_refused<T: TlsTransport>() {
    let trusted = Authority::new("tidings test CA");
    let unknown = Authority::new("unknown CA");
    let server = T::server(unknown.ca_file(), &unknown.server(), ClientCerts::NotAsked);
    let url = T::url(server.port(), Some("app:s3cret"));
    let refused = connect::<T>(&url, trusted.ca_file(), None)
        .await
        .err()
        .expect("a server signed by an authority the client does not trust");
    assert_names::<T>(&refused);
    let shown = refused.to_string();
    assert!(shown.contains("certificate"), "{shown}");
    assert!(shown.contains(&url.replace("s3cret", "***")), "{shown}");
    assert!(!shown.contains("s3cret"), "{shown}");
}

/// The four cases as tests of `$transport` (a [`TlsTransport`]), ignored with `$needs` unless
/// asked for, as the test command does.
#[macro_export]
macro_rules! tls_cases {
    ($transport:ty, $needs:literal) => {
        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        #[ignore = $needs]
        async fn an_event_goes_over_tls_with_the_ca_from_code() {
            $crate::tls_cases::ca_from_code::<$transport>().await;
        }

        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        #[ignore = $needs]
        async fn mutual_tls_presents_the_client_certificate() {
            $crate::tls_cases::mutual_tls::<$transport>().await;
        }

        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        #[ignore = $needs]
        async fn connect_takes_the_tls_files_from_the_environment() {
            $crate::tls_cases::files_from_env::<$transport>(env!("CARGO_BIN_EXE_round_trip")).await;
        }

        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        #[ignore = $needs]
        async fn a_server_the_client_does_not_trust_is_refused() {
            $crate::tls_cases::untrusted_server_refused::<$transport>().await;
        }
    };
}
