//! A NATS server of a test's own: `nats-server` with JetStream, started as a child process on a
//! free loopback port with its store in a temporary folder, so that a test may stop it under a
//! live subscription without disturbing the shared server on 4222 or other tests.

use std::net::{TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use tempfile::TempDir;

use crate::nats_server::wait;

/// The server process; killed when dropped.
pub struct OwnNats {
    port: u16,
    store: TempDir,
    child: Option<Child>,
}

impl OwnNats {
    /// Starts a server on a port the system says is free, and waits until it listens.
    pub fn start() -> Result<OwnNats, String> {
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|listener| listener.local_addr())
            .map_err(|e| format!("finding a free port: {e}"))?
            .port();
        let store = tempfile::tempdir().map_err(|e| format!("a folder for the store: {e}"))?;
        let mut server = OwnNats {
            port,
            store,
            child: None,
        };
        server.resume()?;
        Ok(server)
    }

    /// The URL to connect to.
    pub fn url(&self) -> String {
        format!("nats://127.0.0.1:{}", self.port)
    }

    /// Kills the server at once (SIGKILL), as a crash or a lost host would, and waits for it
    /// to be gone.
    pub fn kill(&mut self) -> Result<(), String> {
        let Some(mut child) = self.child.take() else {
            return Ok(());
        };
        child
            .kill()
            .map_err(|e| format!("killing nats-server: {e}"))?;
        child
            .wait()
            .map(drop)
            .map_err(|e| format!("waiting for nats-server to end: {e}"))
    }

    /// Starts the server again on the same port and store, and waits until it listens.
    pub fn resume(&mut self) -> Result<(), String> {
        let child = Command::new("nats-server")
            .args([
                "-a",
                "127.0.0.1",
                "-p",
                &self.port.to_string(),
                "-js",
                "-sd",
            ])
            .arg(self.store.path())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| format!("starting nats-server (is it installed?): {e}"))?;
        self.child = Some(child);
        let address = format!("127.0.0.1:{}", self.port);
        wait("nats-server to listen", Duration::from_secs(30), || {
            TcpStream::connect(&address).is_ok()
        })
    }
}

impl Drop for OwnNats {
    fn drop(&mut self) {
        if let Err(error) = self.kill() {
            eprintln!("{error}");
        }
    }
}
