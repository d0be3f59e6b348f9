//! A Redis, Mosquitto, NATS or RabbitMQ server of a test's own, listening only over TLS on a free loopback port,
//! with the certificates of [`crate::certificates`]; killed when the test drops it. The shared
//! servers on the default ports are left alone.

use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use tempfile::TempDir;

use crate::certificates::Identity;

/// How long a server may take to listen.
const START_LIMIT: Duration = Duration::from_secs(20);

/// Whether the server asks clients for a certificate signed by its authority.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ClientCerts {
    /// Clients connect without one.
    NotAsked,
    /// A client without one is turned away (mutual TLS).
    Required,
}

/// A running server process.
pub struct TlsServer {
    name: &'static str,
    port: u16,
    child: Child,
    /// Stopped with SIGTERM, for a start script that passes it on to the server it runs;
    /// otherwise killed.
    graceful: bool,
    log: PathBuf,
    // Holds the server's configuration, data and log until it is dropped.
    _dir: TempDir,
}

impl TlsServer {
    /// `redis-server` with its plain port off and TLS on a free port, trusting `ca` for
    /// client certificates.
    pub fn redis(ca: &Path, server: &Identity, clients: ClientCerts) -> Self {
        let dir = folder("redis");
        let port = free_port();
        let log = dir.path().join("redis.log");
        let mut command = Command::new("redis-server");
        command
            .args([
                "--port",
                "0",
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
            ])
            .arg("--tls-port")
            .arg(port.to_string())
            .arg("--tls-cert-file")
            .arg(&server.cert)
            .arg("--tls-key-file")
            .arg(&server.key)
            .arg("--tls-ca-cert-file")
            .arg(ca)
            .arg("--tls-auth-clients")
            .arg(match clients {
                ClientCerts::NotAsked => "no",
                ClientCerts::Required => "yes",
            })
            .arg("--dir")
            .arg(dir.path())
            .arg("--logfile")
            .arg(&log);
        TlsServer::start("redis-server", command, port, log, dir)
    }

    /// `mosquitto` with one TLS listener on a free port, anonymous clients allowed, trusting
    /// `ca` for client certificates.
    pub fn mosquitto(ca: &Path, server: &Identity, clients: ClientCerts) -> Self {
        let dir = folder("mosquitto");
        let port = free_port();
        let log = dir.path().join("mosquitto.log");
        let config = dir.path().join("mosquitto.conf");
        let text = format!(
            "listener {port} 127.0.0.1\n\
             allow_anonymous true\n\
             persistence false\n\
             log_dest file {log}\n\
             cafile {ca}\n\
             certfile {cert}\n\
             keyfile {key}\n\
             require_certificate {required}\n",
            log = log.display(),
            ca = ca.display(),
            cert = server.cert.display(),
            key = server.key.display(),
            required = clients == ClientCerts::Required,
        );
        std::fs::write(&config, text).expect("writing the Mosquitto configuration");
        let mut command = Command::new("mosquitto");
        command.arg("-c").arg(&config);
        TlsServer::start("mosquitto", command, port, log, dir)
    }

    /// `nats-server` with JetStream and TLS on a free port, trusting `ca` for client
    /// certificates (`verify` when they are required).
    pub fn nats(ca: &Path, server: &Identity, clients: ClientCerts) -> Self {
        let dir = folder("nats");
        let port = free_port();
        let log = dir.path().join("nats.log");
        let config = dir.path().join("nats.conf");
        let text = format!(
            "listen: \"127.0.0.1:{port}\"\n\
             jetstream {{ store_dir: \"{store}\" }}\n\
             tls {{\n  cert_file: \"{cert}\"\n  key_file: \"{key}\"\n  ca_file: \"{ca}\"\n  verify: {verify}\n}}\n",
            store = dir.path().join("jetstream").display(),
            cert = server.cert.display(),
            key = server.key.display(),
            ca = ca.display(),
            verify = clients == ClientCerts::Required,
        );
        std::fs::write(&config, text).expect("writing the NATS configuration");
        let mut command = Command::new("nats-server");
        command.arg("-c").arg(&config).arg("-l").arg(&log);
        TlsServer::start("nats-server", command, port, log, dir)
    }

    /// A RabbitMQ node of its own (named after its port, on the local `epmd`) with only a TLS
    /// listener, on a free port, verifying client certificates against `ca` when they are
    /// required. Started through the server's start script run as the current user, so that
    /// its files stay in the test's folder; stopped with SIGTERM, which the script passes on.
    pub fn rabbitmq(ca: &Path, server: &Identity, clients: ClientCerts) -> Self {
        let dir = folder("rabbitmq");
        let port = free_port();
        let log = dir.path().join("log");
        let config = dir.path().join("rabbitmq.conf");
        let required = clients == ClientCerts::Required;
        let text = format!(
            "listeners.tcp = none\n\
             listeners.ssl.default = 127.0.0.1:{port}\n\
             loopback_users = none\n\
             ssl_options.cacertfile = {ca}\n\
             ssl_options.certfile = {cert}\n\
             ssl_options.keyfile = {key}\n\
             ssl_options.verify = {verify}\n\
             ssl_options.fail_if_no_peer_cert = {required}\n",
            ca = ca.display(),
            cert = server.cert.display(),
            key = server.key.display(),
            verify = if required {
                "verify_peer"
            } else {
                "verify_none"
            },
        );
        std::fs::write(&config, text).expect("writing the RabbitMQ configuration");
        let mut command = Command::new("/usr/lib/rabbitmq/bin/rabbitmq-server");
        command
            .env("RABBITMQ_NODENAME", format!("tidings-tls-{port}@localhost"))
            .env("RABBITMQ_DIST_PORT", free_port().to_string())
            // The path without `.conf`, as the start script adds it.
            .env("RABBITMQ_CONFIG_FILE", dir.path().join("rabbitmq"))
            .env("RABBITMQ_MNESIA_BASE", dir.path().join("mnesia"))
            .env("RABBITMQ_LOG_BASE", &log)
            .env("RABBITMQ_ENABLED_PLUGINS_FILE", dir.path().join("plugins"))
            .env("RABBITMQ_PID_FILE", dir.path().join("pid"));
        let log = log.join(format!("tidings-tls-{port}@localhost.log"));
        let mut server = TlsServer::start("rabbitmq-server", command, port, log, dir);
        server.graceful = true;
        server
    }

    /// The port it listens on, on 127.0.0.1.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Starts `command` and waits until it accepts connections on `port`, or fails with its
    /// log if it exits or does not listen in time.
    fn start(
        name: &'static str,
        mut command: Command,
        port: u16,
        log: PathBuf,
        dir: TempDir,
    ) -> Self {
        let child = command
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("starting {name} (tests/run.sh installs it): {e}"));
        let mut server = TlsServer {
            name,
            port,
            child,
            graceful: false,
            log,
            _dir: dir,
        };
        let started = Instant::now();
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            match server.child.try_wait() {
                Ok(Some(status)) => panic!("{name} exited ({status}): {}", server.log_text()),
                Ok(None) => {}
                Err(e) => panic!("{name}: {e}"),
            }
            assert!(
                started.elapsed() < START_LIMIT,
                "{name} did not listen on 127.0.0.1:{port} within {START_LIMIT:?}: {}",
                server.log_text()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        server
    }

    fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log)
            .unwrap_or_else(|e| format!("(no log at {}: {e})", self.log.display()))
    }
}

impl Drop for TlsServer {
    fn drop(&mut self) {
        if self.graceful {
            let pid = self.child.id().to_string();
            match Command::new("kill").args(["-TERM", &pid]).status() {
                Ok(status) if status.success() => {}
                outcome => eprintln!("stopping {} (pid {pid}): {outcome:?}", self.name),
            }
        } else if let Err(e) = self.child.kill() {
            eprintln!("stopping {} (pid {}): {e}", self.name, self.child.id());
        }
        if let Err(e) = self.child.wait() {
            eprintln!("waiting for {} (pid {}): {e}", self.name, self.child.id());
        }
    }
}

fn folder(name: &str) -> TempDir {
    tempfile::Builder::new()
        .prefix(&format!("tidings-{name}-"))
        .tempdir()
        .expect("a temporary folder for the server")
}

/// A port nothing listens on now.
fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .expect("a free port")
        .port()
}
