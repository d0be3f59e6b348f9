//! `tidings generate` against its floor, plain protox + prost-build, on the same 1,000-event
//! corpus with the same formatting setting, in the same run; optionally the compile time of the
//! two outputs too.
//!
//! ```sh
//! cargo bench -p tidings-codegen --bench generate
//! TIDINGS_BENCH_COMPILE=1 cargo bench -p tidings-codegen --bench generate
//! ```
//!
//! The corpus comes from `../shared/bench/gen-corpus.py` (`TIDINGS_GEN_CORPUS` names another
//! copy; `TIDINGS_BENCH_EVENTS` another size). Generation runs alternate between the two, and
//! each side reports its median.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

const ROUNDS: usize = 7;

fn corpus(dir: &Path, events: &str) {
    let script = std::env::var_os("TIDINGS_GEN_CORPUS")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/bench/gen-corpus.py")
        });
    let status = Command::new("python3")
        .arg(&script)
        .arg(dir)
        .args(["--events", events])
        .status()
        .unwrap_or_else(|e| panic!("cannot run python3 {}: {e}", script.display()));
    assert!(status.success(), "{} failed", script.display());
}

fn proto_files(dir: &Path, base: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            proto_files(&path, base, out);
        } else if path.extension().is_some_and(|e| e == "proto") {
            out.push(path.strip_prefix(base).unwrap().to_path_buf());
        }
    }
}

/// The floor: what a project using plain prost-build with protox does.
fn plain(schemas: &Path, files: &[PathBuf], out: &Path) {
    let mut compiler = protox::Compiler::new([schemas]).unwrap();
    compiler.include_imports(true).include_source_info(true);
    compiler.open_files(files).unwrap();
    std::fs::create_dir_all(out).unwrap();
    prost_build::Config::new()
        .format(true)
        .out_dir(out)
        .include_file("mod.rs")
        .compile_fds(compiler.file_descriptor_set())
        .unwrap();
}

/// What `tidings generate DIR --out OUT` does, stubs and JSON included.
fn tidings(schemas: &Path, out: &Path) {
    tidings_codegen::configure()
        .format(true)
        .generate(schemas)
        .unwrap()
        .write(out)
        .unwrap();
}

fn median(mut times: Vec<Duration>) -> Duration {
    times.sort();
    times[times.len() / 2]
}

fn ms(d: Duration) -> String {
    format!("{:.0} ms", d.as_secs_f64() * 1000.0)
}

fn main() {
    let events = std::env::var("TIDINGS_BENCH_EVENTS").unwrap_or_else(|_| "1000".to_owned());
    let work = tempfile::tempdir().unwrap();
    let schemas = work.path().join("schemas");
    corpus(&schemas, &events);
    let mut files = Vec::new();
    proto_files(&schemas, &schemas, &mut files);
    files.sort();
    let (plain_out, tidings_out) = (work.path().join("plain"), work.path().join("tidings"));

    // One round each first, so that both start with a warm file cache.
    plain(&schemas, &files, &plain_out);
    tidings(&schemas, &tidings_out);
    let (mut floor, mut ours) = (Vec::new(), Vec::new());
    for _ in 0..ROUNDS {
        let start = Instant::now();
        plain(&schemas, &files, &plain_out);
        floor.push(start.elapsed());
        let start = Instant::now();
        tidings(&schemas, &tidings_out);
        ours.push(start.elapsed());
    }
    let (floor, ours) = (median(floor), median(ours));
    let size = |dir: &Path| -> u64 {
        std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().metadata().unwrap().len())
            .sum()
    };
    println!("corpus: {events} events in {} files", files.len());
    println!(
        "plain protox + prost-build (formatted): {} (median of {ROUNDS}), {} KiB written",
        ms(floor),
        size(&plain_out) / 1024
    );
    println!(
        "tidings generate (formatted):           {} (median of {ROUNDS}), {} KiB written",
        ms(ours),
        size(&tidings_out) / 1024
    );
    println!(
        "generate ratio: {:.2}x the floor (target <= 1.2x)",
        ours.as_secs_f64() / floor.as_secs_f64()
    );

    if std::env::var_os("TIDINGS_BENCH_COMPILE").is_some() {
        compile_times(&plain_out, &tidings_out);
    }
}

/// Builds a crate around each output, after their dependencies, and compares the time.
fn compile_times(plain_out: &Path, tidings_out: &Path) {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| root.join("target"))
        .join("bench-compile");
    let work = tempfile::tempdir().unwrap();
    let ws = work.path();
    let runtime = root.join("runtime").canonicalize().unwrap();
    std::fs::write(
        ws.join("Cargo.toml"),
        "[workspace]\nmembers = [\"with-tidings\", \"prost-only\"]\nresolver = \"2\"\n",
    )
    .unwrap();
    let krate = |name: &str, deps: &str, include: &Path| {
        let dir = ws.join(name);
        std::fs::create_dir_all(dir.join("src")).unwrap();
        std::fs::write(dir.join("Cargo.toml"), format!("[package]\nname = \"{name}\"\nversion = \"0.0.0\"\nedition = \"2024\"\n\n[dependencies]\n{deps}")).unwrap();
        (dir, format!("include!({:?});\n", include.join("mod.rs")))
    };
    let (with_tidings, with_tidings_lib) = krate(
        "with-tidings",
        &format!(
            "tidings = {{ path = {runtime:?}, default-features = false, features = [\"derive\"] }}\n"
        ),
        tidings_out,
    );
    let (prost_only, prost_only_lib) = krate(
        "prost-only",
        "prost = \"0.14\"\nprost-types = \"0.14\"\n",
        plain_out,
    );
    std::fs::copy(root.join("Cargo.lock"), ws.join("Cargo.lock")).unwrap();
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let build = |package: &str| {
        let start = Instant::now();
        let status = Command::new(&cargo)
            .args(["build", "--quiet", "--offline", "-p", package])
            .current_dir(ws)
            .env("CARGO_TARGET_DIR", &target)
            .status()
            .unwrap();
        assert!(status.success(), "building {package} failed");
        start.elapsed()
    };
    // Dependencies first, with empty crates, so that only the generated code is timed.
    std::fs::write(with_tidings.join("src/lib.rs"), "").unwrap();
    std::fs::write(prost_only.join("src/lib.rs"), "").unwrap();
    build("with-tidings");
    build("prost-only");
    std::fs::write(prost_only.join("src/lib.rs"), prost_only_lib).unwrap();
    let floor = build("prost-only");
    std::fs::write(with_tidings.join("src/lib.rs"), with_tidings_lib).unwrap();
    let ours = build("with-tidings");
    println!("compile (dev profile), prost-only crate: {}", ms(floor));
    println!("compile (dev profile), tidings crate:    {}", ms(ours));
    println!(
        "compile ratio: {:.2}x the floor (target <= 1.3x)",
        ours.as_secs_f64() / floor.as_secs_f64()
    );
}
