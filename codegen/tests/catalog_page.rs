//! The HTML event catalog of the example schemas, loaded in headless Chromium: it renders
//! without a console message, needs no other file, and shows every event's topic.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

fn schemas() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../schemas")
}

fn page() -> String {
    tidings_codegen::configure()
        .docs(schemas(), "Shop events")
        .expect("the example schemas render")
}

/// What Chromium shows for the file `html`: the DOM after loading, and the console messages
/// the page caused (Chromium logs each one, whatever its level, as a `CONSOLE` line).
fn load(html: &Path) -> (String, Vec<String>) {
    let profile = tempfile::tempdir().unwrap();
    let mut child = Command::new("chromium")
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--enable-logging=stderr",
            "--v=0",
        ])
        .arg(format!("--user-data-dir={}", profile.path().display()))
        .arg("--dump-dom")
        .arg(format!("file://{}", html.display()))
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("chromium runs: install it (`apt-get install chromium`), as .ci/run does");
    // A browser that never finishes loading is a failure, not a hung test run.
    let started = Instant::now();
    while child.try_wait().unwrap().is_none() {
        if started.elapsed() > Duration::from_secs(120) {
            child.kill().unwrap();
            panic!("chromium did not finish loading {}", html.display());
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "chromium failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let console = String::from_utf8_lossy(&out.stderr)
        .lines()
        .filter(|l| l.contains(":CONSOLE"))
        .map(str::to_owned)
        .collect();
    (String::from_utf8(out.stdout).unwrap(), console)
}

#[test]
fn the_catalog_of_the_example_schemas_is_pinned() {
    insta::assert_snapshot!(page());
}

#[test]
fn the_catalog_needs_no_other_file() {
    let html = page();
    for reference in ["src=", "<link", "url(", "@import", "<script"] {
        assert!(
            !html.contains(reference),
            "the page refers to another file: `{reference}`"
        );
    }
    for (at, _) in html.match_indices("href=\"") {
        assert!(
            html[at + 6..].starts_with('#'),
            "a link leaves the page: {}",
            &html[at..at + 60]
        );
    }
}

#[test]
fn chromium_renders_the_catalog_without_console_messages_and_shows_every_topic() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("index.html");
    std::fs::write(&file, page()).unwrap();
    let (dom, console) = load(&file);
    assert!(console.is_empty(), "console messages: {console:#?}");

    let report = tidings_codegen::configure().check(schemas()).unwrap();
    assert!(!report.events.is_empty());
    for event in &report.events {
        let shown = format!("<code class=\"topic\">{}</code>", event.topic());
        assert!(dom.contains(&shown), "{} is not shown", event.topic());
    }
    // Both majors of `events.order.created`, side by side; only v2 is current.
    assert!(dom.contains("<div class=\"version\" id=\"events.order.v1.Created\">"));
    assert!(dom.contains("<div class=\"version current\" id=\"events.order.v2.Created\">"));
    // Field comments come from the schemas.
    assert!(dom.contains("When the customer confirmed the order."));
}

#[test]
fn the_console_check_catches_a_page_that_logs_an_error() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("broken.html");
    std::fs::write(
        &file,
        "<!DOCTYPE html><title>broken</title><script>missingFunction();</script>",
    )
    .unwrap();
    let (_, console) = load(&file);
    assert!(
        console.iter().any(|l| l.contains("missingFunction")),
        "an uncaught error went unnoticed: {console:#?}"
    );
}
