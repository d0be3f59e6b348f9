//! Broker addresses: read from the environment, and shown without their secrets.

use url::Url;
use url::form_urlencoded;

/// The address in the environment variable `name`, or `default` when it is unset or blank.
pub fn address_from_env(name: &str, default: &str) -> String {
    std::env::var(name)
        .ok()
        .filter(|value| !value.trim().is_empty())
        .unwrap_or_else(|| default.to_owned())
}

/// What a secret is shown as.
const HIDDEN: &str = "***";

/// Words that mark a query parameter as a secret, in its name of any case.
const SECRET_WORDS: [&str; 6] = ["password", "pass", "secret", "token", "key", "auth"];

/// The address with its secrets replaced by `***`, for messages and logs.
///
/// Hidden: the password of the user info (`amqp://guest:***@host`, percent-encoded or not), a
/// user info that is a token alone (`nats://***@host`), and the value of every query parameter
/// whose name contains `password`, `pass`, `secret`, `token`, `key` or `auth`, in any case
/// (`?sasl_password=***`). URLs are read by the `url` crate. Text that is no URL with an
/// authority (`127.0.0.1:9092`, `host1:9092,host2:9092`, `kafka://h1:9092,h2:9092`) comes back
/// as it is, but for a user info before an `@` and secret query parameters, hidden the same way.
pub fn redact(address: &str) -> String {
    match Url::parse(address) {
        Ok(mut url) if !url.cannot_be_a_base() => {
            // Neither should fail, as a URL with a user info has a host; if one did, nothing of
            // the address is shown rather than its secret.
            let hidden = if url.password().is_some() {
                url.set_password(Some(HIDDEN))
            } else if !url.username().is_empty() {
                url.set_username(HIDDEN)
            } else {
                Ok(())
            };
            if hidden.is_err() {
                return HIDDEN.to_owned();
            }
            if let Some(query) = url.query() {
                let query = redact_query(query);
                url.set_query(Some(&query));
            }
            url.into()
        }
        _ => redact_text(address),
    }
}

/// `redact` for text the `url` crate does not read as a URL with an authority.
fn redact_text(text: &str) -> String {
    let start = text.find("://").map_or(0, |at| at + 3);
    let (scheme, rest) = text.split_at(start);
    let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let (authority, tail) = rest.split_at(authority_end);
    let mut out = String::with_capacity(text.len());
    out.push_str(scheme);
    match authority.rsplit_once('@') {
        Some((user_info, hosts)) => {
            out.push_str(&hide_user_info(user_info));
            out.push('@');
            out.push_str(hosts);
        }
        None => out.push_str(authority),
    }
    match tail.split_once('?') {
        Some((path, query_and_fragment)) => {
            let (query, fragment) = query_and_fragment
                .find('#')
                .map_or((query_and_fragment, ""), |at| {
                    query_and_fragment.split_at(at)
                });
            out.push_str(path);
            out.push('?');
            out.push_str(&redact_query(query));
            out.push_str(fragment);
        }
        None => out.push_str(tail),
    }
    out
}

/// A user info with its password hidden, or all of it when it has none (a token).
fn hide_user_info(user_info: &str) -> String {
    match user_info.split_once(':') {
        Some((user, _)) => format!("{user}:{HIDDEN}"),
        None => HIDDEN.to_owned(),
    }
}

/// A query string with the value of each secret parameter hidden, the rest kept as written.
fn redact_query(query: &str) -> String {
    query
        .split('&')
        .map(|pair| match pair.split_once('=') {
            Some((name, _)) if is_secret(name) => format!("{name}={HIDDEN}"),
            _ => pair.to_owned(),
        })
        .collect::<Vec<_>>()
        .join("&")
}

/// Whether a query parameter's name (as written, so percent-decoded first) marks a secret.
fn is_secret(name: &str) -> bool {
    let name: String = form_urlencoded::parse(name.as_bytes())
        .map(|(name, _)| name.into_owned())
        .collect();
    let name = name.to_lowercase();
    SECRET_WORDS.iter().any(|word| name.contains(word))
}

#[cfg(test)]
mod tests {
    use super::redact;

    #[test]
    fn hides_secrets_and_keeps_the_rest() {
        for (address, shown) in [
            // User info: the password, percent-encoded or not, or a token alone.
            (
                "amqp://guest:guest@127.0.0.1:5672/%2f",
                "amqp://guest:***@127.0.0.1:5672/%2f",
            ),
            ("amqp://guest:p%40ss@host", "amqp://guest:***@host"),
            (
                "amqps://us%3Aer:p%3As%2Fs@host:5671/vh",
                "amqps://us%3Aer:***@host:5671/vh",
            ),
            (
                "redis://:secret@localhost:6379",
                "redis://:***@localhost:6379",
            ),
            (
                "redis://default:s3cr3t@localhost:6379/0",
                "redis://default:***@localhost:6379/0",
            ),
            ("nats://token@localhost:4222", "nats://***@localhost:4222"),
            (
                "nats://s%40cret@localhost:4222",
                "nats://***@localhost:4222",
            ),
            ("mqtt://user:p@ss@host:1883", "mqtt://user:***@host:1883"),
            // Nothing secret: unchanged.
            ("nats://127.0.0.1:4222", "nats://127.0.0.1:4222"),
            ("memory://", "memory://"),
            (
                "amqp://host/vh?heartbeat=10&channel_max=5",
                "amqp://host/vh?heartbeat=10&channel_max=5",
            ),
            // Secrets in the query string, by name in any case; other parameters kept.
            (
                "redis://host:6379/0?password=hunter2&timeout=5",
                "redis://host:6379/0?password=***&timeout=5",
            ),
            (
                "kafka://host:9092?sasl.PASSWORD=x&sasl.username=bob&client_id=c",
                "kafka://host:9092?sasl.PASSWORD=***&sasl.username=bob&client_id=c",
            ),
            (
                "nats://host:4222?Token=abc&nkey=SUAB&authMechanism=plain&apiSecret=s",
                "nats://host:4222?Token=***&nkey=***&authMechanism=***&apiSecret=***",
            ),
            (
                "mqtt://host?pass%77ord=x&q=1",
                "mqtt://host?pass%77ord=***&q=1",
            ),
            (
                "amqp://u:p@host/vh?auth_mechanism=external#frag",
                "amqp://u:***@host/vh?auth_mechanism=***#frag",
            ),
            // Not URLs: unchanged, but for a user info or a secret parameter.
            ("127.0.0.1:9092", "127.0.0.1:9092"),
            ("host1:9092,host2:9092", "host1:9092,host2:9092"),
            ("kafka://h1:9092,h2:9092", "kafka://h1:9092,h2:9092"),
            (
                "user:secret@host1:9092,host2:9092",
                "user:***@host1:9092,host2:9092",
            ),
            ("kafka://tok@h1:9092,h2:9092", "kafka://***@h1:9092,h2:9092"),
            (
                "kafka://h1:9092,h2:9092?sasl_password=x&acks=all",
                "kafka://h1:9092,h2:9092?sasl_password=***&acks=all",
            ),
        ] {
            assert_eq!(redact(address), shown, "{address}");
        }
    }
}
