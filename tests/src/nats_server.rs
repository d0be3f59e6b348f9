//! The NATS server this machine runs on 127.0.0.1:4222 with `start-stop-daemon` (see
//! `tests/run.sh`), restarted by the tests that check what survives a restart.

use std::process::Command;
use std::time::{Duration, Instant};

fn run(command: &mut Command) -> Result<String, String> {
    let output = command.output().map_err(|e| format!("{command:?}: {e}"))?;
    if !output.status.success() {
        return Err(format!(
            "{command:?} failed: {}",
            String::from_utf8_lossy(&output.stderr).trim()
        ));
    }
    Ok(String::from_utf8_lossy(&output.stdout).trim().to_owned())
}

/// Polls `done` every 50 ms until it holds, or fails after `limit`.
pub(crate) fn wait(
    what: &str,
    limit: Duration,
    mut done: impl FnMut() -> bool,
) -> Result<(), String> {
    let start = Instant::now();
    while !done() {
        if start.elapsed() > limit {
            return Err(format!("{what}: not within {limit:?}"));
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    Ok(())
}

/// Stops the server by its pid and starts it with the service command.
pub fn restart() -> Result<(), String> {
    let pid = run(Command::new("pidof").args(["-s", "nats-server"]))?;
    run(Command::new("kill").arg(&pid))?;
    let proc = format!("/proc/{pid}");
    wait("nats-server to stop", Duration::from_secs(30), || {
        !std::path::Path::new(&proc).exists()
    })?;
    run(Command::new("start-stop-daemon").args([
        "--start",
        "--oknodo",
        "--background",
        "--exec",
        "/usr/sbin/nats-server",
        "--",
        "-a",
        "127.0.0.1",
        "-p",
        "4222",
        "-js",
        "-sd",
        "/var/lib/nats-server",
        "-l",
        "/var/log/nats-server.log",
    ]))?;
    wait("nats-server to listen", Duration::from_secs(30), || {
        std::net::TcpStream::connect("127.0.0.1:4222").is_ok()
    })
}
