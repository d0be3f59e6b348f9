//! Request-reply over NATS: a typed client and server of tidings against the raw async-nats
//! client doing the same exchange, in the same run.
//!
//! Both sides send the same request (a reservation: an order id, a SKU, a quantity) and answer
//! with the same reply, encoded and decoded with prost; 4 tasks each make their requests one
//! after the other, each waiting for its reply, and one server answers them. The raw side is
//! `Client::request` on a subject with a server subscribed with a queue group, each request
//! decoded and its reply encoded and published to the request's inbox; the typed side is
//! `Bus::serve` and `Client::call`, which also write and check the CloudEvents attributes of
//! both messages. Each round runs both sides, the one that goes first alternating; the ratio is
//! the median of the rounds' own ratios.
//!
//! `cargo bench -p tidings --features nats --bench request_reply` against the server of
//! `TIDINGS_NATS_URL` (loopback default) prints requests/s for each side and the ratio.

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

async fn raw(client: async_nats::Client) -> Duration {
    call_all(move |i| {
        let client = client.clone();
        async move {
            let sent = request(i);
            let reply = client
                .request(RAW_SUBJECT, sent.encode_to_vec().into())
                .await
                .expect("a raw reply");
            let reply = StockReservation::decode(reply.payload).expect("a reply that decodes");
            assert_eq!(reply.order_id, sent.order_id);
        }
    })
    .await
}

/// The raw server: decode, answer, encode, publish to the inbox.
async fn serve_raw(client: async_nats::Client) {
    let mut requests = client
        .queue_subscribe(RAW_SUBJECT, "bench".into())
        .await
        .expect("subscribing the raw server");
    while let Some(message) = requests.next().await {
        let request = ReserveStock::decode(message.payload).expect("a request that decodes");
        let reply = answer(&request).encode_to_vec();
        let inbox = message.reply.expect("a request with an inbox");
        client
            .publish(inbox, reply.into())
            .await
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
        let raw_server = tokio::spawn(serve_raw(raw_client.clone()));
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
        let (mut typed_times, mut raw_times) = (Vec::new(), Vec::new());
        for round in 0..=ROUNDS {
            let (typed_time, raw_time) = if round % 2 == 0 {
                let typed_time = typed(client.clone()).await;
                (typed_time, raw(raw_client.clone()).await)
            } else {
                let raw_time = raw(raw_client.clone()).await;
                (typed(client.clone()).await, raw_time)
            };
            if round > 0 {
                typed_times.push(typed_time);
                raw_times.push(raw_time);
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
        let ratio = common::median(
            typed_times
                .iter()
                .zip(&raw_times)
                .map(|(typed, raw)| raw.as_secs_f64() / typed.as_secs_f64())
                .collect(),
        );
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
        println!("  ratio {ratio:.2} (median of the rounds' ratios; target >= 0.90)");
        server.shutdown().await;
        raw_server.abort();
    });
}
