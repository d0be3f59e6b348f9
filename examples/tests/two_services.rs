//! The two service programs as processes over a real NATS server: two notification services in
//! the group `notifications`, one in a second group, and the order service publishing orders.
//! Every order must be notified once by one of the two members of `notifications`, and once by
//! the member of the second group.
//!
//! The orders carry an id unique to the run, so what other runs left in the groups' durable
//! consumers (and is delivered first) is ignored.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Write};
use std::process::{Child, ChildStdin, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

const ORDERS: usize = 6;
const SECOND_GROUP: &str = "audit";

fn nats_url() -> String {
    std::env::var("TIDINGS_NATS_URL")
        .ok()
        .filter(|url| !url.trim().is_empty())
        .unwrap_or_else(|| "nats://127.0.0.1:4222".to_owned())
}

/// What a reader thread reports about a process's standard output.
enum Output {
    Line(usize, String),
    Closed(usize),
}

/// A program started by the test, killed when dropped unless it already ended, so that no
/// process outlives the test, whichever way it ends.
struct Process {
    name: String,
    child: Child,
    lines: Vec<String>,
    closed: bool,
}

impl Process {
    /// Starts `program` with `args`; each line it prints is sent to `output` tagged with `index`.
    fn start(
        name: &str,
        program: &str,
        args: &[&str],
        index: usize,
        output: &mpsc::Sender<Output>,
    ) -> Process {
        let mut child = Command::new(program)
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {name} ({program}): {e}"));
        let stdout = child.stdout.take().expect("stdout is piped");
        let output = output.clone();
        thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if output.send(Output::Line(index, line)).is_err() {
                    return;
                }
            }
            // The test may be gone already; nothing to tell then.
            output.send(Output::Closed(index)).ok();
        });
        Process {
            name: name.to_owned(),
            child,
            lines: Vec::new(),
            closed: false,
        }
    }

    fn stdin(&mut self) -> ChildStdin {
        self.child.stdin.take().expect("stdin is piped")
    }

    /// Asks the program to stop as Ctrl-C would.
    fn interrupt(&self) {
        let status = Command::new("kill")
            .args(["-INT", &self.child.id().to_string()])
            .status()
            .unwrap_or_else(|e| panic!("cannot run `kill` to interrupt {}: {e}", self.name));
        assert!(status.success(), "`kill -INT` on {} failed", self.name);
    }

    /// Its exit status, once its output is closed.
    fn wait(&mut self) -> ExitStatus {
        self.child
            .wait()
            .unwrap_or_else(|e| panic!("cannot wait for {}: {e}", self.name))
    }

    /// The orders of `run` it says it notified, each as often as it says so.
    fn notified(&self, run: &str) -> Vec<String> {
        let prefix = format!("o-{run}-");
        self.lines
            .iter()
            .filter(|line| line.starts_with("notified customer "))
            .filter_map(|line| line.split_whitespace().nth(5))
            .filter(|order| order.starts_with(&prefix))
            .map(str::to_owned)
            .collect()
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        if let Ok(Some(_)) = self.child.try_wait() {
            return;
        }
        if let Err(e) = self.child.kill() {
            eprintln!("cannot kill {}: {e}", self.name);
        }
        if let Err(e) = self.child.wait() {
            eprintln!("cannot wait for {}: {e}", self.name);
        }
    }
}

/// Reads output into `processes` until `done` says so, failing after `limit` with `waiting_for`.
fn read_until(
    processes: &mut [Process],
    output: &mpsc::Receiver<Output>,
    limit: Duration,
    waiting_for: &str,
    done: impl Fn(&[Process]) -> bool,
) {
    let deadline = Instant::now() + limit;
    while !done(processes) {
        let left = deadline.saturating_duration_since(Instant::now());
        match output.recv_timeout(left) {
            Ok(Output::Line(index, line)) => {
                println!("[{}] {line}", processes[index].name);
                processes[index].lines.push(line);
            }
            Ok(Output::Closed(index)) => processes[index].closed = true,
            Err(_) => {
                let seen: Vec<_> = processes
                    .iter()
                    .map(|p| format!("{}: {:?}", p.name, p.lines))
                    .collect();
                panic!("still waiting for {waiting_for} after {limit:?}; output so far: {seen:#?}");
            }
        }
    }
}

/// How many times each order of `run` appears in `notified`; every one of the run is listed.
fn counts(run: &str, notified: impl IntoIterator<Item = String>) -> BTreeMap<String, usize> {
    let mut counts: BTreeMap<String, usize> =
        (1..=ORDERS).map(|n| (format!("o-{run}-{n}"), 0)).collect();
    for order in notified {
        *counts.entry(order).or_default() += 1;
    }
    counts
}

#[test]
#[ignore = "needs NATS with JetStream at TIDINGS_NATS_URL (default nats://127.0.0.1:4222): run with --include-ignored, as the test command does"]
fn every_order_is_notified_once_per_group() {
    let url = nats_url();
    let since_epoch = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("the clock is after 1970");
    let run = format!("{:x}{:x}", since_epoch.as_micros(), std::process::id());
    let notifier = env!("CARGO_BIN_EXE_notification_service");
    let (sender, output) = mpsc::channel();

    let members = [
        ("notifications-1", "notifications"),
        ("notifications-2", "notifications"),
        ("audit-1", SECOND_GROUP),
    ];
    let mut notifiers: Vec<Process> = members
        .iter()
        .enumerate()
        .map(|(index, (name, group))| {
            let args = ["--broker", url.as_str(), "--group", group];
            Process::start(name, notifier, &args, index, &sender)
        })
        .collect();
    // Publishing starts only once every member's consumer exists: a new group starts with
    // what is published after it subscribed.
    read_until(
        &mut notifiers,
        &output,
        Duration::from_secs(60),
        "every notifier's ready line",
        |ps| {
            if let Some(p) = ps.iter().find(|p| p.closed) {
                panic!("{} ended before it was ready: {:?}", p.name, p.lines);
            }
            ps.iter()
                .all(|p| p.lines.iter().any(|l| l.starts_with("ready: ")))
        },
    );

    let (orders_sender, orders_output) = mpsc::channel();
    let mut order_service = Process::start(
        "order_service",
        env!("CARGO_BIN_EXE_order_service"),
        &["--broker", url.as_str(), "--stdin"],
        0,
        &orders_sender,
    );
    {
        let mut stdin = order_service.stdin();
        for n in 1..=ORDERS {
            writeln!(stdin, "o-{run}-{n} c-{n}").expect("the order service reads its stdin");
        }
        // Dropping stdin ends the input, and so the order service.
    }
    read_until(
        std::slice::from_mut(&mut order_service),
        &orders_output,
        Duration::from_secs(60),
        "the order service to end",
        |ps| ps[0].closed,
    );
    let status = order_service.wait();
    assert!(status.success(), "the order service failed: {status}");
    let published = order_service
        .lines
        .iter()
        .filter(|l| l.starts_with(&format!("published order o-{run}-")))
        .count();
    assert_eq!(published, ORDERS, "{:?}", order_service.lines);

    let all_notified = |ps: &[Process]| {
        let group = counts(&run, ps[..2].iter().flat_map(|p| p.notified(&run)));
        let second = counts(&run, ps[2].notified(&run));
        group.values().all(|&n| n > 0) && second.values().all(|&n| n > 0)
    };
    read_until(
        &mut notifiers,
        &output,
        Duration::from_secs(60),
        "every order notified in both groups",
        all_notified,
    );

    // A graceful stop: whatever a member holds is handled before it exits, so any duplicate
    // shows up in its output.
    for notifier in &notifiers {
        notifier.interrupt();
    }
    read_until(
        &mut notifiers,
        &output,
        Duration::from_secs(60),
        "every notifier to stop",
        |ps| ps.iter().all(|p| p.closed),
    );
    for notifier in &mut notifiers {
        let status = notifier.wait();
        assert!(status.success(), "{} failed: {status}", notifier.name);
        assert!(
            notifier
                .lines
                .last()
                .is_some_and(|l| l.starts_with("stopped (Ctrl-C)")),
            "{} did not stop gracefully: {:?}",
            notifier.name,
            notifier.lines
        );
    }

    let expected = counts(&run, std::iter::empty())
        .into_keys()
        .map(|order| (order, 1))
        .collect::<BTreeMap<_, _>>();
    let group = counts(&run, notifiers[..2].iter().flat_map(|p| p.notified(&run)));
    assert_eq!(
        group, expected,
        "each order once across the two members of `notifications`"
    );
    let second = counts(&run, notifiers[2].notified(&run));
    assert_eq!(
        second, expected,
        "each order once by the member of `{SECOND_GROUP}`"
    );
    println!(
        "notifications split {} / {} between the two members",
        notifiers[0].notified(&run).len(),
        notifiers[1].notified(&run).len()
    );
}
