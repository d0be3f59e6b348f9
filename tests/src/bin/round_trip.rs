//! `round_trip URL`: connects with `tidings::connect(URL)`, so with the settings the adapter
//! reads from its environment variables (its TLS files among them), publishes one typed event
//! and waits for a subscriber to handle it. Prints `handled` and exits 0 once it did; prints
//! the error and exits 1 otherwise. The TLS tests run it with variables set for it alone.

use std::process::ExitCode;

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> ExitCode {
    let Some(url) = std::env::args().nth(1) else {
        eprintln!("usage: round_trip BROKER_URL");
        return ExitCode::from(2);
    };
    let outcome = match tidings::connect(&url).await {
        Ok(broker) => tidings_tests::round_trip::round_trip(broker).await,
        Err(e) => Err(format!("connecting: {e}")),
    };
    match outcome {
        Ok(()) => {
            println!("handled");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("{e}");
            ExitCode::FAILURE
        }
    }
}
