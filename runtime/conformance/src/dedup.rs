//! What every [`DedupStore`] must do, written once: the in-process store, the Redis store and
//! the PostgreSQL store each run [`store_contract`] against a real store.

use tidings_core::{DedupStore, MAX_DEDUP_ID_LEN};

use crate::probe::run_id;

/// Checks `store`: an id is unseen until recorded, then seen; recording twice is harmless; an id
/// is remembered per scope; ids that differ by a byte or share a prefix are told apart; a scope
/// whose end looks like an id's start cannot run into it; an id of [`MAX_DEDUP_ID_LEN`] bytes is
/// kept and a longer one refused, with its length. Scopes and ids carry a fresh run id,
/// so a shared store may hold what other runs left. Panics with what went wrong.
pub async fn store_contract(store: &dyn DedupStore) {
    let run = run_id();
    let scope = format!("events.contract.checked.v1/{run}");
    let other_scope = format!("events.contract.other.v1/{run}");
    let seen = |scope: &str, id: &str| {
        let (scope, id) = (scope.to_owned(), id.to_owned());
        async move {
            store
                .seen(&scope, &id)
                .await
                .unwrap_or_else(|e| panic!("seen({scope:?}, {id:?}) failed: {e}"))
        }
    };
    let record = |scope: &str, id: &str| {
        let (scope, id) = (scope.to_owned(), id.to_owned());
        async move {
            store
                .record(&scope, &id)
                .await
                .unwrap_or_else(|e| panic!("record({scope:?}, {id:?}) failed: {e}"))
        }
    };

    assert!(
        !seen(&scope, "id-1").await,
        "an id never recorded is unseen"
    );
    record(&scope, "id-1").await;
    assert!(seen(&scope, "id-1").await, "a recorded id is seen");
    record(&scope, "id-1").await;
    assert!(seen(&scope, "id-1").await, "recording twice keeps it seen");

    assert!(
        !seen(&other_scope, "id-1").await,
        "an id recorded in one scope is unseen in another"
    );
    assert!(
        !seen(&scope, "id-10").await,
        "an id is not seen by its prefix"
    );
    assert!(!seen(&scope, "id-").await, "a prefix of an id is not seen");

    // A scope ending where another scope's id begins must not match: `a` + `b:c` is not
    // `a:b` + `c`.
    record(&format!("{scope}:x"), "y").await;
    assert!(
        !seen(&scope, "x:y").await,
        "scope and id are kept apart, whatever characters they hold"
    );

    let long = "x".repeat(200);
    record(&scope, &long).await;
    assert!(seen(&scope, &long).await, "an id of 200 bytes is kept");
    assert!(!seen(&scope, &"x".repeat(199)).await);

    let longest = "y".repeat(MAX_DEDUP_ID_LEN);
    record(&scope, &longest).await;
    assert!(
        seen(&scope, &longest).await,
        "an id of {MAX_DEDUP_ID_LEN} bytes is kept"
    );
    let too_long = format!("{longest}y");
    for refused in [
        store.record(&scope, &too_long).await.err(),
        store.seen(&scope, &too_long).await.err(),
    ] {
        let error = refused
            .unwrap_or_else(|| panic!("an id of {} bytes is refused", too_long.len()))
            .to_string();
        assert!(
            error.contains(&format!("{} bytes", too_long.len())),
            "the error names the id's length: {error}"
        );
    }
}
