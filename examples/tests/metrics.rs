//! The metrics a bus records, scraped over HTTP from the Prometheus exporter the examples
//! install (`notification_service --metrics ADDRESS`), in this process: orders published on the
//! in-process broker, one handled on its second attempt, one refused for good, and the scrape
//! shows exactly those counts.

use std::collections::BTreeMap;
use std::net::{SocketAddr, TcpListener};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Empty};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use tidings::{Bus, Event, HandlerError, Received, RetryPolicy};
use tidings_examples::events::order::v1::Created;
use tidings_examples::metrics::install_prometheus;

/// One sample of the scrape: its labels and value.
type Samples = BTreeMap<String, Vec<(BTreeMap<String, String>, f64)>>;

/// Reads Prometheus' text format: `name{label="value",...} number` per line, comments skipped.
fn parse(text: &str) -> Samples {
    let mut samples = Samples::new();
    for line in text
        .lines()
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
    {
        let (series, value) = line.rsplit_once(' ').expect("a sample line");
        let (name, labels) = match series.split_once('{') {
            Some((name, labels)) => (name, labels.trim_end_matches('}')),
            None => (series, ""),
        };
        let labels = labels
            .split(',')
            .filter(|l| !l.is_empty())
            .map(|label| {
                let (key, value) = label.split_once('=').expect("label=\"value\"");
                (key.to_owned(), value.trim_matches('"').to_owned())
            })
            .collect();
        let value = value.parse().expect("a number");
        samples
            .entry(name.to_owned())
            .or_default()
            .push((labels, value));
    }
    samples
}

/// The value of the one series of `name` with exactly these labels.
fn value(samples: &Samples, name: &str, labels: &[(&str, &str)]) -> f64 {
    let wanted: BTreeMap<String, String> = labels
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect();
    let series = samples
        .get(name)
        .unwrap_or_else(|| panic!("no metric {name} in {samples:#?}"));
    let matching: Vec<f64> = series
        .iter()
        .filter(|(labels, _)| *labels == wanted)
        .map(|(_, value)| *value)
        .collect();
    assert_eq!(
        matching.len(),
        1,
        "one series of {name} with {wanted:?}: {series:#?}"
    );
    matching[0]
}

async fn scrape(address: SocketAddr) -> String {
    let client = Client::builder(TokioExecutor::new()).build_http::<Empty<Bytes>>();
    let uri = format!("http://{address}/metrics").parse().expect("a URI");
    let response = client.get(uri).await.expect("the exporter answers");
    assert!(response.status().is_success(), "{response:?}");
    let body = response.into_body().collect().await.expect("the body");
    String::from_utf8(body.to_bytes().to_vec()).expect("UTF-8 text")
}

#[tokio::test]
async fn the_scrape_shows_exactly_the_traffic_caused() {
    let address = TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .expect("a free port");
    install_prometheus(address).expect("the exporter");
    let bus = Bus::memory().with_metrics();

    let (done_tx, mut done) = tokio::sync::mpsc::unbounded_channel();
    let handler = move |order: Received<Created>| {
        let outcome = match (order.order_id.as_str(), order.attempt()) {
            ("o-flaky", 1) => Err(HandlerError::from("the mail relay is busy")),
            ("o-bad", _) => Err(HandlerError::permanent("no customer to notify")),
            _ => Ok(()),
        };
        // Reported at the last attempt each order gets.
        if outcome.is_ok() || order.order_id == "o-bad" {
            done_tx
                .send(order.order_id.clone())
                .expect("the test waits");
        }
        async move { outcome }
    };
    let subscription = bus
        .subscribe(handler)
        .group("notifications")
        .retry(
            RetryPolicy::default()
                .initial_backoff(Duration::from_millis(1))
                .max_backoff(Duration::from_millis(2)),
        )
        .await
        .expect("subscribing");
    for id in ["o-1", "o-2", "o-flaky", "o-bad"] {
        let order = Created {
            order_id: id.to_owned(),
            customer_id: "c-1".to_owned(),
            ..Default::default()
        };
        bus.publish(&order).await.expect("publishing");
    }
    for _ in 0..4 {
        tokio::time::timeout(Duration::from_secs(10), done.recv())
            .await
            .expect("every order handled within 10 s")
            .expect("the handler reports");
    }
    // Settles what is in flight (the dead letter, the last acks) before the scrape.
    subscription.shutdown().await;

    let samples = parse(&scrape(address).await);
    let topic = Created::TOPIC;
    let publish = [
        ("messaging_system", "memory"),
        ("messaging_destination_name", topic),
        ("messaging_operation_name", "publish"),
    ];
    let process = [
        ("messaging_system", "memory"),
        ("messaging_destination_name", topic),
        ("messaging_operation_name", "process"),
        ("messaging_consumer_group_name", "notifications"),
    ];
    let dead = [&process[..], &[("error_type", "handler_error")]].concat();
    let sent = value(&samples, "messaging_client_sent_messages_total", &publish);
    let published = value(
        &samples,
        "messaging_client_operation_duration_seconds_count",
        &publish,
    );
    let consumed = value(
        &samples,
        "messaging_client_consumed_messages_total",
        &process,
    );
    let processed = value(
        &samples,
        "messaging_process_duration_seconds_count",
        &process,
    );
    let retried = value(
        &samples,
        "messaging_tidings_retried_messages_total",
        &process,
    );
    let dead_lettered = value(
        &samples,
        "messaging_tidings_dead_lettered_messages_total",
        &dead,
    );
    let in_flight = value(&samples, "messaging_tidings_in_flight_messages", &process);
    // Four published; five deliveries (o-flaky twice); one retry; one dead letter; none left.
    assert_eq!(
        (
            sent,
            published,
            consumed,
            processed,
            retried,
            dead_lettered,
            in_flight
        ),
        (4.0, 4.0, 5.0, 5.0, 1.0, 1.0, 0.0)
    );
}
