//! Broker addresses: read from the environment, and shown without their secrets.

/// The address in the environment variable `name`, or `default` when it is unset or blank.
pub fn address_from_env(name: &str, default: &str) -> String {
    std::env::var(name)
        .ok()
        .filter(|value| !value.trim().is_empty())
        .unwrap_or_else(|| default.to_owned())
}

/// Replaces the password of a `scheme://user:password@host` address with `***`.
pub fn redact(address: &str) -> String {
    let Some(scheme_end) = address.find("://") else {
        return address.to_owned();
    };
    let rest = &address[scheme_end + 3..];
    let authority_end = rest.find('/').unwrap_or(rest.len());
    let authority = &rest[..authority_end];
    match authority.rfind('@') {
        Some(at) => {
            let user_info = &authority[..at];
            let user = user_info.split(':').next().unwrap_or("");
            let hidden = if user_info.contains(':') {
                format!("{user}:***")
            } else {
                "***".to_owned()
            };
            format!(
                "{}{}@{}",
                &address[..scheme_end + 3],
                hidden,
                &rest[at + 1..]
            )
        }
        None => address.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::redact;

    #[test]
    fn redacts_credentials() {
        assert_eq!(
            redact("amqp://guest:guest@127.0.0.1:5672/%2f"),
            "amqp://guest:***@127.0.0.1:5672/%2f"
        );
        assert_eq!(
            redact("redis://:secret@localhost:6379"),
            "redis://:***@localhost:6379"
        );
        assert_eq!(
            redact("nats://token@localhost:4222"),
            "nats://***@localhost:4222"
        );
        assert_eq!(redact("nats://127.0.0.1:4222"), "nats://127.0.0.1:4222");
        assert_eq!(redact("127.0.0.1:9092"), "127.0.0.1:9092");
    }
}
