//! What the benchmarks against a broker server share: the runtime they run on, work spread over
//! tasks, and the median of their rounds.

/// Two worker threads, timers and I/O: the client side of every benchmark against a server
/// runs on it, tidings and raw client alike.
pub fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("a runtime")
}

/// Runs `work(i)` for every `i` in `0..count` from `tasks` tasks, each taking every `tasks`-th
/// number and awaiting each call before the next; returns once all are done.
pub async fn spread<F, Fut>(count: u64, tasks: u64, work: F)
where
    F: Fn(u64) -> Fut + Clone + Send + 'static,
    Fut: Future<Output = ()> + Send,
{
    let tasks: Vec<_> = (0..tasks)
        .map(|first| {
            let work = work.clone();
            tokio::spawn(async move {
                for i in (first..count).step_by(tasks as usize) {
                    work(i).await;
                }
            })
        })
        .collect();
    for task in tasks {
        task.await.expect("a task of the benchmark");
    }
}

/// The median of the rounds' figures.
pub fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    values[values.len() / 2]
}
