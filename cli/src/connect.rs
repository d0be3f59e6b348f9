//! The broker a verb talks to: a URL whose scheme picks the adapter, with credentials from the
//! URL or from the environment; every message shows it with its password hidden.

use std::sync::Arc;

use clap::Args;
use tidings::{Broker, ConnectError};

/// The environment variable that names the broker when `--broker` is not given.
pub(crate) const URL_ENV: &str = "TIDINGS_BROKER_URL";
/// The user name put into a URL that has none.
pub(crate) const USER_ENV: &str = "TIDINGS_BROKER_USER";
/// The password put into a URL that has none.
pub(crate) const PASSWORD_ENV: &str = "TIDINGS_BROKER_PASSWORD";

/// Which broker to talk to.
#[derive(Args)]
pub(crate) struct BrokerUrl {
    /// The broker: `nats://`, `amqp://`, `redis://`, `kafka://` or `mqtt://` and its address.
    /// A user and password missing from the URL are read from TIDINGS_BROKER_USER and
    /// TIDINGS_BROKER_PASSWORD.
    #[arg(long = "broker", value_name = "URL", env = URL_ENV, hide_env_values = true)]
    url: String,
}

impl BrokerUrl {
    /// The URL with the credentials of the environment filled in where it has none.
    fn with_credentials(&self) -> String {
        let user = std::env::var(USER_ENV).ok().filter(|u| !u.is_empty());
        let password = std::env::var(PASSWORD_ENV).ok().filter(|p| !p.is_empty());
        if user.is_none() && password.is_none() {
            return self.url.clone();
        }
        // A Kafka URL lists servers and takes no credentials this way; neither does text that
        // is not a URL, which `connect` refuses with its reason.
        let Ok(mut url) = url::Url::parse(&self.url) else {
            return self.url.clone();
        };
        if url.scheme() == "kafka" {
            return self.url.clone();
        }
        if url.username().is_empty()
            && let Some(user) = &user
            && url.set_username(user).is_err()
        {
            return self.url.clone();
        }
        if url.password().is_none()
            && let Some(password) = &password
            && url.set_password(Some(password)).is_err()
        {
            return self.url.clone();
        }
        url.into()
    }

    /// Connects; every error the adapters return hides the password.
    pub(crate) async fn connect(&self) -> Result<Arc<dyn Broker>, ConnectError> {
        tidings::connect(&self.with_credentials()).await
    }
}
