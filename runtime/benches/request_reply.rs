//! Request-reply over NATS: a typed client and server of tidings against the raw async-nats
//! client doing the same exchange, in the same run.
//!
//! Both sides send the same request (a reservation: an order id, a SKU, a quantity) and answer
//! with the same reply, encoded and decoded with prost; 4 tasks each make their requests one
//! after the other, each waiting for its reply, and one server answers them. The raw side is
//! `Client::request` on a subject with a server subscribed with a queue group, each request
//! decoded and its reply encoded and published to the request's inbox; the typed side is
//! `Bus::serve` and `Client::call`, which also write and check the CloudEvents attributes of
//! both messages. A third side is the raw client sending the same CloudEvents attributes as
//! headers, built per message, on request and reply: the ratio against it is tidings' own
//! cost, the gap between the raw sides the wire format's. Each round runs every side, the one that goes first alternating; the ratio is
//! the median of the rounds' own ratios.
//!
//! `cargo bench -p tidings --features nats --bench request_reply` against the server of
//! `TIDINGS_NATS_URL` (loopback default) prints requests/s for each side and the ratios.

mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use prost::Message as _;
use tidings::broker::nats::async_nats;
use tidings::broker::nats::{NatsBroker, NatsConfig};
use tidings::{Bus, Client, Event, Protobuf, Received, Rpc, Status};

/// What the client asks.
#[derive(Clone, PartialEq, prost::Message)]
struct ReserveStock {
    #[prost(string, tag = "1")]
    order_id: String,
    #[prost(string, tag = "2")]
    sku: String,
    #[prost(uint32, tag = "3")]
    quantity: u32,
}

impl Event for ReserveStock {
    const TOPIC: &'static str = "bench.inventory.reserve_stock.v1";
    const SCHEMA: &'static str = "bench.inventory.v1.ReserveStock";
    const DATA_SCHEMA: &'static str = "proto:bench.inventory.v1.ReserveStock";
    type Codec = Protobuf;
}

/// What the server answers.
#[derive(Clone, PartialEq, prost::Message)]
struct StockReservation {
    #[prost(bool, tag = "1")]
    reserved: bool,
    #[prost(string, tag = "2")]
    warehouse: String,
    #[prost(string, tag = "3")]
    order_id: String,
}

impl Event for StockReservation {
    const TOPIC: &'static str = "bench.inventory.stock_reservation.v1";
    const SCHEMA: &'static str = "bench.inventory.v1.StockReservation";
    const DATA_SCHEMA: &'static str = "proto:bench.inventory.v1.StockReservation";
    type Codec = Protobuf;
}

/// The operation.
struct Reserve;

impl Rpc for Reserve {
    type Request = ReserveStock;
    type Reply = StockReservation;
    const TOPIC: &'static str = "bench.inventory.stock.reserve.v1";
    const NAME: &'static str = "bench.inventory.v1.Stock.Reserve";
}

const REQUESTS: u64 = 8_000;
const CALLERS: u64 = 4;
const ROUNDS: usize = 9;
const RAW_SUBJECT: &str = "bench.raw.stock.reserve.v1";
const RAW_CE_SUBJECT: &str = "bench.raw_ce.stock.reserve.v1";
const DEADLINE: Duration = Duration::from_secs(5);

fn request(i: u64) -> ReserveStock {
    ReserveStock {
        order_id: format!("ord-{i:012}"),
        sku: "sku-4711".into(),
        quantity: 3,
    }
}

fn answer(request: &ReserveStock) -> StockReservation {
    StockReservation {
        reserved: request.quantity < 10,
        warehouse: "ams-1".into(),
        order_id: request.order_id.clone(),
    }
}

/// Runs `call(i)` for every request from [`CALLERS`] tasks; the time until the last reply.
async fn call_all<F, Fut>(call: F) -> Duration
where
    F: Fn(u64) -> Fut + Clone + Send + 'static,
    Fut: Future<Output = ()> + Send,
{
    let started = Instant::now();
    common::spread(REQUESTS, CALLERS, call).await;
    started.elapsed()
}

async fn typed(client: Client) -> Duration {
    let client = Arc::new(client);
    call_all(move |i| {
        let client = client.clone();
        async move {
            let sent = request(i);
            let reply = client
                .call::<Reserve>(&sent)
                .deadline(DEADLINE)
                .await
                .expect("a typed reply");
            assert_eq!(reply.order_id, sent.order_id);
        }
    })
    .await
}

/// Whether a raw side sends the bare payload or also the CloudEvents attributes tidings writes.
#[derive(Clone, Copy)]
enum Attributes {
    Bare,
    CloudEvents,
}

/// The CloudEvents attributes of a message of `event_type` and `schema`, as binary-mode NATS
/// headers, made for each message as a producer writing them by hand would.
fn cloud_event_headers(event_type: &str, schema: &str) -> async_nats::HeaderMap {
    let time = time::OffsetDateTime::now_utc()
        .format(&time::format_description::well_known::Rfc3339)
        .expect("a time");
    let mut headers = async_nats::HeaderMap::new();
    for (name, value) in [
        ("ce-specversion", "1.0".to_owned()),
        ("ce-id", uuid::Uuid::now_v7().to_string()),
        ("ce-source", "bench".to_owned()),
        ("ce-type", event_type.to_owned()),
        ("ce-time", time),
        ("ce-dataschema", format!("proto:{schema}")),
        ("content-type", "application/protobuf".to_owned()),
    ] {
        headers.insert(name, value.as_str());
    }
    headers
}

async fn raw(client: async_nats::Client, attributes: Attributes) -> Duration {
    call_all(move |i| {
        let client = client.clone();
        async move {
            let sent = request(i);
            let payload = sent.encode_to_vec().into();
            let reply = match attributes {
                Attributes::Bare => client.request(RAW_SUBJECT, payload).await,
                Attributes::CloudEvents => {
                    let headers = cloud_event_headers(ReserveStock::TYPE, ReserveStock::SCHEMA);
                    client
                        .request_with_headers(RAW_CE_SUBJECT, headers, payload)
                        .await
                }
            }
            .expect("a raw reply");
            let reply = StockReservation::decode(reply.payload).expect("a reply that decodes");
            assert_eq!(reply.order_id, sent.order_id);
        }
    })
    .await
}

/// The raw server: decode, answer, encode, publish to the inbox, with the attributes a
/// request came with.
async fn serve_raw(client: async_nats::Client, subject: &'static str, attributes: Attributes) {
    let mut requests = client
        .queue_subscribe(subject, "bench".into())
        .await
        .expect("subscribing the raw server");
    while let Some(message) = requests.next().await {
        let request = ReserveStock::decode(message.payload).expect("a request that decodes");
        let reply = answer(&request).encode_to_vec().into();
        let inbox = message.reply.expect("a request with an inbox");
        match attributes {
            Attributes::Bare => client.publish(inbox, reply).await,
            Attributes::CloudEvents => {
                let headers = cloud_event_headers(StockReservation::TYPE, StockReservation::SCHEMA);
                client.publish_with_headers(inbox, headers, reply).await
            }
        }
        .expect("answering a raw request");
    }
}

fn main() {
    let runtime = common::runtime();
    runtime.block_on(async {
        let config = NatsConfig::from_env();
        let raw_client = async_nats::connect(config.url())
            .await
            .expect("connecting to NATS");
        let raw_servers = [
            tokio::spawn(serve_raw(raw_client.clone(), RAW_SUBJECT, Attributes::Bare)),
            tokio::spawn(serve_raw(
                raw_client.clone(),
                RAW_CE_SUBJECT,
                Attributes::CloudEvents,
            )),
        ];
        let bus = Bus::new(
            NatsBroker::connect(config)
                .await
                .expect("connecting to NATS"),
        );
        let server = bus
            .serve::<Reserve, _>("bench", |request: Received<ReserveStock>| async move {
                Ok::<_, Status>(answer(&request))
            })
            .await
            .expect("serving requests");
        let client = bus.client().await.expect("a request client");
        // A first round warms connections up.
        let (mut typed_times, mut raw_times, mut ce_times) = (Vec::new(), Vec::new(), Vec::new());
        for round in 0..=ROUNDS {
            // Alternate who goes first, so a drift in the machine's load favours neither.
            let typed_first = round % 2 == 0;
            let mut typed_time = None;
            if typed_first {
                typed_time = Some(typed(client.clone()).await);
            }
            let raw_time = raw(raw_client.clone(), Attributes::Bare).await;
            let ce_time = raw(raw_client.clone(), Attributes::CloudEvents).await;
            if !typed_first {
                typed_time = Some(typed(client.clone()).await);
            }
            if round > 0 {
                typed_times.push(typed_time.expect("the typed side ran"));
                raw_times.push(raw_time);
                ce_times.push(ce_time);
            }
        }
        let rate = |times: &[Duration]| {
            common::median(
                times
                    .iter()
                    .map(|t| REQUESTS as f64 / t.as_secs_f64())
                    .collect(),
            )
        };
        // Each round runs every side back to back, so a ratio taken within a round cancels
        // what the machine's load did between rounds.
        let ratio = |side: &[Duration], floor: &[Duration]| {
            common::median(
                side.iter()
                    .zip(floor)
                    .map(|(side, floor)| floor.as_secs_f64() / side.as_secs_f64())
                    .collect(),
            )
        };
        println!(
            "nats request-reply: {REQUESTS} requests per round from {CALLERS} callers, median of \
             {ROUNDS} rounds"
        );
        println!(
            "  tidings typed client + server:       {:>9.0} requests/s",
            rate(&typed_times)
        );
        println!(
            "  raw async-nats request + prost:      {:>9.0} requests/s",
            rate(&raw_times)
        );
        println!(
            "  raw async-nats, same CloudEvents headers: {:>9.0} requests/s",
            rate(&ce_times)
        );
        println!(
            "  ratio {:.2} against the bare payload, {:.2} against the same headers (median of \
             the rounds' ratios; target >= 0.90)",
            ratio(&typed_times, &raw_times),
            ratio(&typed_times, &ce_times)
        );
        server.shutdown().await;
        for raw_server in raw_servers {
            raw_server.abort();
        }
    });
}
