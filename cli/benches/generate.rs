//! What a user waits for, against the floor it competes with, in the same run:
//!
//! - `tidings generate CORPUS --out OUT` as a process, against a plain program that calls
//!   `protox::compile` and `prost_build::Config::compile_fds` (prost-build's default formatting,
//!   a `mod.rs` include file) on the same files: a first generation into an empty folder, and a
//!   generation after one schema changed, into the folder the last one wrote;
//! - with `TIDINGS_BENCH_BUILD=1`, `cargo build` of a crate whose build script compiles the
//!   corpus with `tidings_codegen::configure().compile(..)`, against one whose build script calls
//!   protox and prost-build, after a schema change (the crates compile none of the code, which
//!   the next comparison times);
//! - with `TIDINGS_BENCH_COMPILE=1`, the build of a crate around each output (`tidings` and its
//!   dependencies, or `prost` and `prost-types`, built first), dev profile.
//!
//! ```sh
//! cargo bench -p tidings-cli --bench generate
//! TIDINGS_BENCH_BUILD=1 TIDINGS_BENCH_COMPILE=1 cargo bench -p tidings-cli --bench generate
//! ```
//!
//! Rounds interleave the two sides, the one that goes first alternating, and each comparison
//! reports the median of the rounds' own ratios, so that load from elsewhere on the machine
//! weighs on both sides of a ratio alike. The corpus comes from `../shared/bench/gen-corpus.py`
//! (`TIDINGS_GEN_CORPUS` names another copy); `TIDINGS_BENCH_EVENTS` lists the corpus sizes
//! (`1000,10000` by default), `TIDINGS_BENCH_ROUNDS` the rounds of the processes (7) and
//! `TIDINGS_BENCH_BUILD_ROUNDS` those of the builds (3); `TIDINGS_BIN` another `tidings` binary.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

/// The argument that makes this binary the plain program: `--plain-twin SCHEMAS OUT`.
const PLAIN_TWIN: &str = "--plain-twin";

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if let [_, flag, schemas, out, ..] = args.as_slice()
        && flag == PLAIN_TWIN
    {
        plain_twin(Path::new(schemas), Path::new(out));
        return;
    }
    let rounds = env_number("TIDINGS_BENCH_ROUNDS", 7);
    let sizes = std::env::var("TIDINGS_BENCH_EVENTS").unwrap_or_else(|_| "1000,10000".to_owned());
    println!("load average: {}", load_average());
    let mut first_corpus = None;
    for events in sizes.split(',').map(str::trim) {
        let work = tempfile::tempdir().unwrap();
        let schemas = work.path().join("schemas");
        let files = corpus(&schemas, events);
        println!("\ncorpus: {events} events in {files} files");
        let events_count: f64 = events.parse().unwrap();
        let outputs = processes(&schemas, work.path(), rounds, events_count);
        if first_corpus.is_none() {
            first_corpus = Some((work, schemas, outputs));
        }
    }
    let Some((_work, schemas, (plain_out, tidings_out))) = first_corpus else {
        return;
    };
    let build = std::env::var_os("TIDINGS_BENCH_BUILD").is_some();
    let compile = std::env::var_os("TIDINGS_BENCH_COMPILE").is_some();
    if build || compile {
        let crates = Crates::new(&schemas, &plain_out, &tidings_out);
        let rounds = env_number("TIDINGS_BENCH_BUILD_ROUNDS", 3);
        if build {
            crates.build_scripts(&schemas, rounds);
        }
        if compile {
            crates.compile(rounds);
        }
    }
    println!("\nload average: {}", load_average());
}

/// The plain program: protox, then prost-build with its defaults, into `out`.
fn plain_twin(schemas: &Path, out: &Path) {
    let mut files = Vec::new();
    proto_files(schemas, schemas, &mut files);
    files.sort();
    let set = protox::compile(&files, [schemas]).unwrap();
    std::fs::create_dir_all(out).unwrap();
    prost_build::Config::new()
        .out_dir(out)
        .include_file("mod.rs")
        .compile_fds(set)
        .unwrap();
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

/// Writes the corpus of `events` events into `dir`; returns how many files it has.
fn corpus(dir: &Path, events: &str) -> usize {
    let script = std::env::var_os("TIDINGS_GEN_CORPUS")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/bench/gen-corpus.py")
        });
    let output = Command::new("python3")
        .arg(&script)
        .arg(dir)
        .args(["--events", events])
        .output()
        .unwrap_or_else(|e| panic!("cannot run python3 {}: {e}", script.display()));
    assert!(output.status.success(), "{} failed", script.display());
    let mut files = Vec::new();
    proto_files(dir, dir, &mut files);
    files.len()
}

/// A schema change: the first file of the corpus gains a comment on its first message, or
/// loses it again, so that both sides have one package file to rewrite.
fn change_schema(schemas: &Path) {
    let mut files = Vec::new();
    proto_files(schemas, schemas, &mut files);
    files.sort();
    let path = schemas.join(&files[0]);
    let text = std::fs::read_to_string(&path).unwrap();
    const MARK: &str = "// Changed in a benchmark round.\n";
    let text = match text.find(MARK) {
        Some(at) => format!("{}{}", &text[..at], &text[at + MARK.len()..]),
        None => {
            let at = text.find("\n// ").unwrap() + 1;
            format!("{}{MARK}{}", &text[..at], &text[at..])
        }
    };
    std::fs::write(&path, text).unwrap();
}

/// One side's round: the wall time, and the CPU time of the process and its children.
#[derive(Clone, Copy)]
struct Sample {
    wall: Duration,
    cpu: Duration,
}

/// Runs a command, which must succeed, and times it.
fn timed(command: &mut Command) -> Sample {
    let cpu = children_cpu();
    let start = Instant::now();
    let output = command.output().unwrap();
    let wall = start.elapsed();
    assert!(
        output.status.success(),
        "{command:?} failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    Sample {
        wall,
        cpu: children_cpu() - cpu,
    }
}

/// The CPU time, user and system, of the children this process waited for, from
/// `/proc/self/stat` (in clock ticks of 10 ms).
fn children_cpu() -> Duration {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap();
    // Fields after the command name, which is in parentheses and may hold spaces.
    let fields: Vec<&str> = stat[stat.rfind(')').unwrap() + 2..].split(' ').collect();
    let ticks = |i: usize| fields[i].parse::<u64>().unwrap();
    // cutime and cstime are fields 16 and 17 of the line, 14 and 15 after the name and state.
    Duration::from_millis((ticks(13) + ticks(14)) * 10)
}

/// The `tidings` binary: `TIDINGS_BIN`, or the one built with this bench.
fn tidings_bin() -> PathBuf {
    std::env::var_os("TIDINGS_BIN")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_BIN_EXE_tidings")))
}

/// The two processes, side by side: first generations, then generations after a change.
/// Returns the folders the last rounds wrote, plain then tidings.
fn processes(schemas: &Path, work: &Path, rounds: usize, events: f64) -> (PathBuf, PathBuf) {
    let plain_out = work.join("plain");
    let tidings_out = work.join("tidings");
    let plain = |out: &Path| {
        timed(
            Command::new(std::env::current_exe().unwrap())
                .arg(PLAIN_TWIN)
                .arg(schemas)
                .arg(out),
        )
    };
    let tidings = |out: &Path| {
        timed(
            Command::new(tidings_bin())
                .arg("generate")
                .arg(schemas)
                .arg("--out")
                .arg(out),
        )
    };
    // Once each first, so that both start with the corpus and the binaries in the file cache.
    plain(&plain_out);
    tidings(&tidings_out);

    let mut first = Pairs::default();
    for round in 0..rounds {
        let fresh = |dir: &Path| {
            if dir.exists() {
                std::fs::remove_dir_all(dir).unwrap();
            }
        };
        fresh(&plain_out);
        fresh(&tidings_out);
        first.round(round, || plain(&plain_out), || tidings(&tidings_out));
    }
    first.report(
        "first generation, into an empty folder",
        "plain protox + prost-build process",
        "tidings generate process",
        rounds,
        1.0,
    );
    let per_thousand = |d: Duration| d.as_secs_f64() * 1000.0 / (events / 1000.0);
    let (ours, floor) = first.medians();
    println!(
        "  per 1,000 events: tidings {:.0} ms, plain {:.0} ms (median wall times)",
        per_thousand(ours),
        per_thousand(floor)
    );

    let mut changed = Pairs::default();
    for round in 0..rounds {
        change_schema(schemas);
        changed.round(round, || plain(&plain_out), || tidings(&tidings_out));
    }
    changed.report(
        "after one schema changed, into the folder of the last generation",
        "plain protox + prost-build process",
        "tidings generate process",
        rounds,
        1.0,
    );
    (plain_out, tidings_out)
}

/// The times of the floor and of tidings, round by round.
#[derive(Default)]
struct Pairs {
    floor: Vec<Sample>,
    ours: Vec<Sample>,
}

impl Pairs {
    /// Runs one round, the side that goes first alternating.
    fn round(
        &mut self,
        round: usize,
        mut floor: impl FnMut() -> Sample,
        mut ours: impl FnMut() -> Sample,
    ) {
        if round.is_multiple_of(2) {
            self.floor.push(floor());
            self.ours.push(ours());
        } else {
            self.ours.push(ours());
            self.floor.push(floor());
        }
    }

    fn report(&self, what: &str, floor: &str, ours: &str, rounds: usize, target: f64) {
        let ratios = |measure: fn(&Sample) -> Duration| -> Vec<f64> {
            self.ours
                .iter()
                .zip(&self.floor)
                .map(|(o, f)| measure(o).as_secs_f64() / measure(f).as_secs_f64())
                .collect()
        };
        let (wall, cpu) = (ratios(|s| s.wall), ratios(|s| s.cpu));
        let listed: Vec<String> = wall.iter().map(|r| format!("{r:.2}")).collect();
        let side = |name: &str, samples: &[Sample]| {
            let walls: Vec<Duration> = samples.iter().map(|s| s.wall).collect();
            let cpus: Vec<Duration> = samples.iter().map(|s| s.cpu).collect();
            println!(
                "  {name:<40} {:>9} wall, {:>9} CPU (medians)",
                ms(median(&walls)),
                ms(median(&cpus))
            );
        };
        println!("{what}, {rounds} interleaved rounds:");
        side(floor, &self.floor);
        side(ours, &self.ours);
        println!("  ratios of the rounds: {}", listed.join(" "));
        println!(
            "  ratio {:.2}x the floor (median of the rounds' ratios; target <= {target:.1}x); CPU time {:.2}x",
            median(&wall),
            median(&cpu)
        );
    }

    /// The median wall time of tidings and of the floor.
    fn medians(&self) -> (Duration, Duration) {
        let walls =
            |samples: &[Sample]| -> Vec<Duration> { samples.iter().map(|s| s.wall).collect() };
        (median(&walls(&self.ours)), median(&walls(&self.floor)))
    }
}

fn median<T: Copy + PartialOrd>(values: &[T]) -> T {
    let mut sorted = values.to_vec();
    sorted.sort_by(|a, b| a.partial_cmp(b).unwrap());
    sorted[sorted.len() / 2]
}

fn ms(d: Duration) -> String {
    format!("{:.0} ms", d.as_secs_f64() * 1000.0)
}

fn env_number(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|l| l.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|_| "unknown".to_owned())
}

/// A workspace of four crates, built into its own target folder in the dev profile: two whose
/// build scripts compile the corpus, and two that compile the generated code.
struct Crates {
    _dir: tempfile::TempDir,
    ws: PathBuf,
    target: PathBuf,
}

impl Crates {
    fn new(schemas: &Path, plain_out: &Path, tidings_out: &Path) -> Self {
        let root = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("..")
            .canonicalize()
            .unwrap();
        let target = std::env::var_os("CARGO_TARGET_DIR")
            .map(PathBuf::from)
            .unwrap_or_else(|| root.join("target"))
            .join("bench-crates");
        let dir = tempfile::tempdir().unwrap();
        let ws = dir.path().to_path_buf();
        std::fs::write(
            ws.join("Cargo.toml"),
            "[workspace]\nmembers = [\"build-tidings\", \"build-plain\", \"with-tidings\", \"prost-only\"]\nresolver = \"2\"\n",
        )
        .unwrap();
        std::fs::copy(root.join("Cargo.lock"), ws.join("Cargo.lock")).unwrap();
        let krate = |name: &str, deps: &str, build: Option<(&str, String)>, lib: &str| {
            let dir = ws.join(name);
            std::fs::create_dir_all(dir.join("src")).unwrap();
            let mut manifest = format!(
                "[package]\nname = \"{name}\"\nversion = \"0.0.0\"\nedition = \"2024\"\n\n[dependencies]\n{deps}"
            );
            if let Some((build_deps, script)) = build {
                manifest.push_str(&format!("\n[build-dependencies]\n{build_deps}"));
                std::fs::write(dir.join("build.rs"), script).unwrap();
            }
            std::fs::write(dir.join("Cargo.toml"), manifest).unwrap();
            std::fs::write(dir.join("src/lib.rs"), lib).unwrap();
        };
        let codegen = root.join("codegen");
        krate(
            "build-tidings",
            "",
            Some((
                &format!("tidings-codegen = {{ path = {codegen:?}, default-features = false }}\n"),
                format!(
                    "fn main() {{\n    tidings_codegen::configure().compile({schemas:?}).unwrap();\n}}\n"
                ),
            )),
            "",
        );
        krate(
            "build-plain",
            "",
            Some((
                "protox = \"0.10\"\nprost-build = \"0.14\"\n",
                format!(
                    r#"use std::path::{{Path, PathBuf}};

fn proto_files(dir: &Path, base: &Path, out: &mut Vec<PathBuf>) {{
    for entry in std::fs::read_dir(dir).unwrap() {{
        let path = entry.unwrap().path();
        if path.is_dir() {{
            proto_files(&path, base, out);
        }} else if path.extension().is_some_and(|e| e == "proto") {{
            out.push(path.strip_prefix(base).unwrap().to_path_buf());
        }}
    }}
}}

fn main() {{
    let schemas = Path::new({schemas:?});
    let mut files = Vec::new();
    proto_files(schemas, schemas, &mut files);
    files.sort();
    for file in &files {{
        println!("cargo:rerun-if-changed={{}}", schemas.join(file).display());
    }}
    let set = protox::compile(&files, [schemas]).unwrap();
    prost_build::Config::new()
        .include_file("mod.rs")
        .compile_fds(set)
        .unwrap();
}}
"#
                ),
            )),
            "",
        );
        let runtime = root.join("runtime");
        krate(
            "with-tidings",
            &format!(
                "tidings = {{ path = {runtime:?}, default-features = false, features = [\"derive\"] }}\n"
            ),
            None,
            "",
        );
        krate(
            "prost-only",
            "prost = \"0.14\"\nprost-types = \"0.14\"\n",
            None,
            "",
        );
        let crates = Crates {
            _dir: dir,
            ws,
            target,
        };
        // Dependencies, build scripts and a first generation, untimed; the two crates of
        // generated code still empty, so that only their own code is timed later.
        for name in ["build-tidings", "build-plain", "with-tidings", "prost-only"] {
            crates.build(name);
        }
        let include = |dir: &Path| format!("include!({:?});\n", dir.join("mod.rs"));
        crates.write_lib("with-tidings", &include(tidings_out));
        crates.write_lib("prost-only", &include(plain_out));
        crates
    }

    fn write_lib(&self, name: &str, text: &str) {
        std::fs::write(self.ws.join(name).join("src/lib.rs"), text).unwrap();
    }

    fn build(&self, name: &str) -> Sample {
        let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
        timed(
            Command::new(cargo)
                .args(["build", "--quiet", "--offline", "-p", name])
                .current_dir(&self.ws)
                .env("CARGO_TARGET_DIR", &self.target)
                .env_remove("CARGO_ENCODED_RUSTFLAGS"),
        )
    }

    /// `cargo build` of each build-script crate after a schema change, which reruns its script.
    fn build_scripts(&self, schemas: &Path, rounds: usize) {
        let mut pairs = Pairs::default();
        for round in 0..rounds {
            change_schema(schemas);
            pairs.round(
                round,
                || self.build("build-plain"),
                || self.build("build-tidings"),
            );
        }
        pairs.report(
            "build script after one schema changed (cargo build, dev profile)",
            "build.rs with protox + prost-build",
            "build.rs with tidings_codegen::compile",
            rounds,
            1.0,
        );
    }

    /// The build of the generated code alone, each round after touching both crates.
    fn compile(&self, rounds: usize) {
        let mut pairs = Pairs::default();
        for round in 0..rounds {
            for name in ["with-tidings", "prost-only"] {
                let lib = self.ws.join(name).join("src/lib.rs");
                let text = std::fs::read_to_string(&lib).unwrap();
                self.write_lib(name, &text);
            }
            pairs.round(
                round,
                || self.build("prost-only"),
                || self.build("with-tidings"),
            );
        }
        pairs.report(
            "compile of the generated code (cargo build, dev profile)",
            "prost-only crate",
            "tidings crate",
            rounds,
            1.3,
        );
    }
}
