//! The in-process dedup store keeps the contract every dedup store keeps.

use tidings::MemoryDedup;

#[tokio::test]
async fn the_memory_store_keeps_the_dedup_contract() {
    tidings_conformance::dedup::store_contract(&MemoryDedup::default()).await;
}
