//! The shop's events, generated from `schemas/` by the build script: one module per protobuf
//! package (`events::order::v1`, `events::order::v2`, `events::payment::v1`...).

tidings::include_events!();

pub mod metrics;
pub mod services;

use events::order::{v1, v2};

/// Upcasts an order placed under v1 to v2: two majors are two types, and a service that moves
/// to v2 converts what it still reads as v1. v1 knew no shipping address nor attributes.
impl From<v1::Created> for v2::Created {
    fn from(order: v1::Created) -> Self {
        v2::Created {
            order_id: order.order_id,
            customer_id: order.customer_id,
            lines: order
                .lines
                .into_iter()
                .map(|line| v2::LineItem {
                    sku: line.sku,
                    quantity: line.quantity,
                    unit_price: line.unit_price,
                })
                .collect(),
            total: order.total,
            shipping_address: None,
            attributes: Default::default(),
            placed_at: order.placed_at,
        }
    }
}
