//! Publishes every event of the shop's schemas on the in-process broker and receives each one
//! through the generated handler traits; calls the inventory's `Stock.Reserve` operation through
//! the generated client and server, and publishes its request and reply as events.
//!
//! `cargo run -p tidings-examples --bin quickstart` prints what arrives and exits with 0 once
//! every event has, or with 1 when one has not within ten seconds.

use std::collections::BTreeSet;
use std::process::ExitCode;
use std::time::{Duration, SystemTime};

use tidings::well_known::Timestamp;
use tidings::{Bus, Event, HandlerError, Received, Status, SubscribeOptions};
use tidings_examples::events::{inventory, order, payment};
use tidings_examples::shop::common::v1::{Address, Money};
use tokio::sync::mpsc;

/// Reports the topic of each event received, after printing it.
#[derive(Clone)]
struct Shop {
    received: mpsc::UnboundedSender<&'static str>,
}

impl Shop {
    fn record<E: Event>(&self, event: &Received<E>, what: String) -> Result<(), HandlerError> {
        let envelope = event.envelope();
        let content_type = envelope.data_content_type.as_deref().unwrap_or("?");
        println!(
            "received {} ({content_type}, attempt {}): {what}",
            E::TOPIC,
            event.attempt()
        );
        self.received
            .send(E::TOPIC)
            .map_err(|_| "the quickstart stopped listening")?;
        Ok(())
    }
}

fn money(m: &Option<Money>) -> String {
    match m {
        Some(m) => format!(
            "{}.{:02} {}",
            m.minor_units / 100,
            m.minor_units % 100,
            m.currency
        ),
        None => "no amount".to_owned(),
    }
}

impl order::v1::Handler for Shop {
    async fn created(&self, e: Received<order::v1::Created>) -> Result<(), HandlerError> {
        let what = format!(
            "order {} by {}, {} line(s), {} via {:?}",
            e.order_id,
            e.customer_id,
            e.lines.len(),
            money(&e.total),
            e.channel()
        );
        self.record(&e, what)
    }

    async fn cancelled(&self, e: Received<order::v1::Cancelled>) -> Result<(), HandlerError> {
        let what = format!("order {} cancelled: {:?}", e.order_id, e.reason());
        self.record(&e, what)
    }
}

impl order::v2::Handler for Shop {
    async fn created(&self, e: Received<order::v2::Created>) -> Result<(), HandlerError> {
        let city = e
            .shipping_address
            .as_ref()
            .map_or("nowhere", |a| a.city.as_str());
        let what = format!(
            "order {} ships to {city}, attributes {:?}",
            e.order_id, e.attributes
        );
        self.record(&e, what)
    }
}

impl payment::v1::Handler for Shop {
    async fn authorized(&self, e: Received<payment::v1::Authorized>) -> Result<(), HandlerError> {
        let method = match &e.method {
            Some(payment::v1::authorized::Method::CardLast4(last4)) => format!("card ...{last4}"),
            Some(payment::v1::authorized::Method::Iban(iban)) => format!("transfer from {iban}"),
            Some(payment::v1::authorized::Method::Wallet(wallet)) => format!("{wallet} wallet"),
            None => "no method".to_owned(),
        };
        let what = format!("{} for order {} by {method}", money(&e.amount), e.order_id);
        self.record(&e, what)
    }

    async fn captured(&self, e: Received<payment::v1::Captured>) -> Result<(), HandlerError> {
        let what = format!("{} captured for order {}", money(&e.amount), e.order_id);
        self.record(&e, what)
    }

    async fn failed(&self, e: Received<payment::v1::Failed>) -> Result<(), HandlerError> {
        let what = format!(
            "payment {} failed: {} (retryable: {})",
            e.payment_id, e.reason, e.retryable
        );
        self.record(&e, what)
    }
}

impl inventory::v1::Handler for Shop {
    async fn stock_adjusted(
        &self,
        e: Received<inventory::v1::StockAdjusted>,
    ) -> Result<(), HandlerError> {
        let what = format!("{} changed by {}, on hand {:?}", e.sku, e.delta, e.on_hand);
        self.record(&e, what)
    }

    async fn reserved(&self, e: Received<inventory::v1::Reserved>) -> Result<(), HandlerError> {
        let what = format!(
            "{} x {} reserved in {} for order {}",
            e.quantity, e.sku, e.warehouse, e.order_id
        );
        self.record(&e, what)
    }

    async fn reserve_stock(
        &self,
        e: Received<inventory::v1::ReserveStock>,
    ) -> Result<(), HandlerError> {
        let what = format!("{} x {} asked for order {}", e.quantity, e.sku, e.order_id);
        self.record(&e, what)
    }

    async fn stock_reservation(
        &self,
        e: Received<inventory::v1::StockReservation>,
    ) -> Result<(), HandlerError> {
        let what = format!("reserved: {} in {:?}", e.reserved, e.warehouse);
        self.record(&e, what)
    }
}

fn now() -> Option<Timestamp> {
    Some(SystemTime::now().into())
}

/// Answers `Stock.Reserve` from one warehouse with room for everything.
struct Warehouse;

impl inventory::v1::StockServer for Warehouse {
    async fn reserve(
        &self,
        request: Received<inventory::v1::ReserveStock>,
    ) -> Result<inventory::v1::StockReservation, Status> {
        Ok(inventory::v1::StockReservation {
            reserved: request.quantity > 0,
            warehouse: "par-1".to_owned(),
        })
    }
}

fn eur(minor_units: i64) -> Option<Money> {
    Some(Money {
        currency: "EUR".to_owned(),
        minor_units,
    })
}

#[tokio::main]
async fn main() -> ExitCode {
    match run().await {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::FAILURE,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

/// Publishes one event of each type; true when all of them came back.
async fn run() -> Result<bool, Box<dyn std::error::Error>> {
    let bus = Bus::memory().with_source("quickstart");
    let (tx, mut rx) = mpsc::unbounded_channel();
    let shop = Shop { received: tx };
    let options = SubscribeOptions::default();
    let mut subscriptions = Vec::new();
    subscriptions.extend(order::v1::subscribe(&bus, shop.clone(), options.clone()).await?);
    subscriptions.extend(order::v2::subscribe(&bus, shop.clone(), options.clone()).await?);
    subscriptions.extend(payment::v1::subscribe(&bus, shop.clone(), options.clone()).await?);
    subscriptions.extend(inventory::v1::subscribe(&bus, shop, options).await?);
    let expected: BTreeSet<String> = subscriptions
        .iter()
        .map(|s| s.topic().to_string())
        .collect();

    let created = order::v1::Created {
        order_id: "o-1001".to_owned(),
        customer_id: "c-42".to_owned(),
        lines: vec![order::v1::LineItem {
            sku: "mug-blue".to_owned(),
            quantity: 3,
            unit_price: eur(1999),
        }],
        total: eur(5997),
        channel: order::v1::Channel::Web.into(),
        placed_at: now(),
    };
    order::v1::Publisher::new(bus.clone())
        .created(&created)
        .key("o-1001")
        .await?;
    order::v2::Publisher::new(bus.clone())
        .created(&order::v2::Created {
            shipping_address: Some(Address {
                lines: vec!["12 rue des Lilas".to_owned()],
                postal_code: "75011".to_owned(),
                city: "Paris".to_owned(),
                country: "FR".to_owned(),
            }),
            attributes: [("gift_wrap".to_owned(), "yes".to_owned())].into(),
            ..order::v2::Created::from(created)
        })
        .await?;
    order::v1::Publisher::new(bus.clone())
        .cancelled(&order::v1::Cancelled {
            order_id: "o-1000".to_owned(),
            reason: order::v1::cancelled::Reason::OutOfStock.into(),
            cancelled_at: now(),
        })
        .await?;

    let payments = payment::v1::Publisher::new(bus.clone());
    payments
        .authorized(&payment::v1::Authorized {
            payment_id: "p-7".to_owned(),
            order_id: "o-1001".to_owned(),
            amount: eur(5997),
            method: Some(payment::v1::authorized::Method::CardLast4(
                "4242".to_owned(),
            )),
            authorization_token: b"opaque-token".to_vec(),
            authorized_at: now(),
        })
        .await?;
    payments
        .captured(&payment::v1::Captured {
            payment_id: "p-7".to_owned(),
            order_id: "o-1001".to_owned(),
            amount: eur(5997),
            captured_at: now(),
        })
        .await?;
    payments
        .failed(&payment::v1::Failed {
            payment_id: "p-8".to_owned(),
            order_id: "o-1002".to_owned(),
            reason: "card expired".to_owned(),
            retryable: false,
        })
        .await?;

    let stock = inventory::v1::Publisher::new(bus.clone());
    stock
        .stock_adjusted(&inventory::v1::StockAdjusted {
            sku: "mug-blue".to_owned(),
            delta: -3,
            on_hand: [("par-1".to_owned(), 17), ("lyo-2".to_owned(), 4)].into(),
            adjusted_at: now(),
        })
        .await?;
    stock
        .reserved(&inventory::v1::Reserved {
            order_id: "o-1001".to_owned(),
            sku: "mug-blue".to_owned(),
            quantity: 3,
            warehouse: "par-1".to_owned(),
        })
        .await?;

    // Request-reply: a server of the `Stock` service, and a client calling it.
    let serving = inventory::v1::serve_stock(&bus, Warehouse).await?;
    let client = inventory::v1::StockClient::new(bus.client().await?);
    let request = inventory::v1::ReserveStock {
        order_id: "o-1001".to_owned(),
        sku: "mug-blue".to_owned(),
        quantity: 3,
    };
    let reply = client.reserve(&request).await?;
    println!(
        "Stock.Reserve answered: reserved {} in {}",
        reply.reserved, reply.warehouse
    );
    serving.shutdown().await;
    // Request and reply are events too, which other services may follow.
    stock.reserve_stock(&request).await?;
    stock.stock_reservation(&reply).await?;

    let mut missing = expected.clone();
    let deadline = tokio::time::sleep(Duration::from_secs(10));
    tokio::pin!(deadline);
    while !missing.is_empty() {
        tokio::select! {
            Some(topic) = rx.recv() => { missing.remove(topic); }
            () = &mut deadline => break,
        }
    }
    for subscription in subscriptions {
        subscription.shutdown().await;
    }
    if missing.is_empty() {
        println!("all {} event types published and received", expected.len());
        Ok(true)
    } else {
        eprintln!("not received within 10 s: {missing:?}");
        Ok(false)
    }
}
