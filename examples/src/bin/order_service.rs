//! The order service: places orders and publishes each as `events.order.created.v1`, printing
//! the id of every event the broker confirmed.
//!
//! ```sh
//! cargo run -p tidings-examples --bin order_service -- --orders 3
//! printf 'o-100 c-7\no-101 c-8\n' | cargo run -p tidings-examples --bin order_service -- --stdin
//! ```
//!
//! The broker is `--broker URL`, else `TIDINGS_BROKER_URL`, else `nats://127.0.0.1:4222`.
//! Exits with 0 once every order is published, 1 on the first that is not, 2 on a bad argument.

use std::process::ExitCode;
use std::time::SystemTime;

use clap::Parser;
use tidings_examples::events::order::v1::{Channel, Created, LineItem, Publisher};
use tidings_examples::services::BrokerArgs;
use tidings_examples::shop::common::v1::Money;
use tokio::io::{AsyncBufReadExt, BufReader};

/// Publishes orders as `events.order.created.v1`.
#[derive(Debug, Parser)]
struct Args {
    #[command(flatten)]
    broker: BrokerArgs,
    /// How many orders to place: o-1 by customer c-1, o-2 by c-2...
    #[arg(long, value_name = "N", default_value_t = 3)]
    orders: u32,
    /// Places one order per line of standard input instead: `ORDER_ID [CUSTOMER_ID]`
    /// (blank lines and lines starting with `#` are skipped).
    #[arg(long, conflicts_with = "orders")]
    stdin: bool,
}

/// What the shop sells, to make up the lines of an order.
const CATALOG: [(&str, i64); 4] = [
    ("mug-blue", 1299),
    ("teapot-cast-iron", 4590),
    ("tea-sencha-100g", 850),
    ("coaster-cork-4", 600),
];

fn eur(minor_units: i64) -> Money {
    Money {
        currency: "EUR".to_owned(),
        minor_units,
    }
}

/// The `n`th order placed (from 1): one to three lines taken from the catalog, and their total.
fn order(n: u64, order_id: String, customer_id: String) -> Created {
    let lines: Vec<LineItem> = (0..n % 3 + 1)
        .map(|i| {
            let (sku, price) = CATALOG[((n + i) % CATALOG.len() as u64) as usize];
            LineItem {
                sku: sku.to_owned(),
                quantity: (i + n) as u32 % 2 + 1,
                unit_price: Some(eur(price)),
            }
        })
        .collect();
    let total = lines
        .iter()
        .map(|line| {
            i64::from(line.quantity) * line.unit_price.as_ref().map_or(0, |p| p.minor_units)
        })
        .sum();
    let channels = [Channel::Web, Channel::Mobile, Channel::Store];
    Created {
        order_id,
        customer_id,
        lines,
        total: Some(eur(total)),
        channel: channels[(n % 3) as usize].into(),
        placed_at: Some(SystemTime::now().into()),
    }
}

/// Publishes `order` keyed by its id, so the events of one order keep their order where the
/// broker keeps order per key, and prints what the broker confirmed.
async fn place(publisher: &Publisher, order: &Created) -> Result<(), tidings::PublishError> {
    let receipt = publisher.created(order).key(order.order_id.clone()).await?;
    let total = order.total.as_ref().map_or(0, |t| t.minor_units);
    let kept = receipt
        .position()
        .map(|position| format!(", kept at {position}"))
        .unwrap_or_default();
    println!(
        "published order {} by {} ({} line(s), {}.{:02} EUR): event {}{kept}",
        order.order_id,
        order.customer_id,
        order.lines.len(),
        total / 100,
        total % 100,
        receipt.id(),
    );
    Ok(())
}

#[tokio::main]
async fn main() -> ExitCode {
    let args = Args::parse();
    match run(args).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("order_service: {e}");
            ExitCode::FAILURE
        }
    }
}

async fn run(args: Args) -> Result<(), Box<dyn std::error::Error>> {
    let bus = args.broker.connect("/shop/order-service").await?;
    let publisher = Publisher::new(bus);
    if !args.stdin {
        for n in 1..=u64::from(args.orders) {
            place(&publisher, &order(n, format!("o-{n}"), format!("c-{n}"))).await?;
        }
        return Ok(());
    }
    // Each line is published as it arrives, so the program also works typed into by hand.
    let mut lines = BufReader::new(tokio::io::stdin()).lines();
    let (mut line_number, mut placed) = (0, 0);
    while let Some(line) = lines.next_line().await? {
        line_number += 1;
        let mut fields = line.split_whitespace();
        let Some(order_id) = fields.next().filter(|id| !id.starts_with('#')) else {
            continue;
        };
        placed += 1;
        let customer_id = fields
            .next()
            .map_or_else(|| format!("c-{placed}"), str::to_owned);
        if let Some(extra) = fields.next() {
            return Err(format!(
                "line {line_number}: unexpected `{extra}`; a line is ORDER_ID [CUSTOMER_ID]"
            )
            .into());
        }
        place(&publisher, &order(placed, order_id.to_owned(), customer_id)).await?;
    }
    Ok(())
}
