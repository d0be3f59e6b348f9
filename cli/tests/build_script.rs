//! A crate whose build script compiles the shop's schemas, built with Cargo itself: what the
//! build script writes is byte-identical to what `tidings generate` writes, and Cargo reruns
//! the build script when a schema it read changes, but not on a second build with nothing
//! changed, nor when another file appears beside the schemas.

use std::path::{Path, PathBuf};
use std::process::Command;

mod files;
use files::files_in;

/// The code generator's crate, which the probe crate's build script depends on.
const CODEGEN: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../codegen");

const BUILD_RS: &str = r#"
fn main() -> Result<(), tidings_codegen::Error> {
    // One line per run, so the test can tell whether Cargo reran the script.
    use std::io::Write as _;
    let log = concat!(env!("CARGO_MANIFEST_DIR"), "/build-runs.log");
    let mut log = std::fs::OpenOptions::new().create(true).append(true).open(log).unwrap();
    writeln!(log, "run").unwrap();
    tidings_codegen::configure().compile("schemas")
}
"#;

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let path = entry.unwrap().path();
        let target = to.join(path.file_name().unwrap());
        if path.is_dir() {
            copy_dir(&path, &target);
        } else {
            std::fs::copy(&path, &target).unwrap();
        }
    }
}

/// Builds the probe crate and returns how many times its build script has run so far.
fn build(krate: &Path, target: &Path) -> usize {
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let out = Command::new(cargo)
        .args(["build", "--quiet", "--offline"])
        .current_dir(krate)
        .env("CARGO_TARGET_DIR", target)
        .output()
        .expect("cargo runs");
    assert!(
        out.status.success(),
        "cargo build failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    std::fs::read_to_string(krate.join("build-runs.log"))
        .unwrap()
        .lines()
        .count()
}

#[test]
fn the_build_script_writes_what_the_cli_writes_and_reruns_only_for_the_files_it_read() {
    let root = tempfile::tempdir().unwrap();
    let krate = root.path();
    copy_dir(
        &Path::new(CODEGEN).join("../schemas"),
        &krate.join("schemas"),
    );
    std::fs::create_dir_all(krate.join("src")).unwrap();
    std::fs::write(
        krate.join("Cargo.toml"),
        format!(
            "[package]\nname = \"build-probe\"\nversion = \"0.0.0\"\nedition = \"2024\"\npublish = false\n\n\
             [build-dependencies]\ntidings-codegen = {{ path = {:?}, default-features = false }}\n\n[workspace]\n",
            CODEGEN
        ),
    )
    .unwrap();
    std::fs::write(krate.join("build.rs"), BUILD_RS).unwrap();
    std::fs::write(
        krate.join("src/main.rs"),
        "fn main() {\n    print!(\"{}\", env!(\"OUT_DIR\"));\n}\n",
    )
    .unwrap();
    // The workspace's versions, so the build needs nothing new from the registry.
    std::fs::copy(
        Path::new(CODEGEN).join("../Cargo.lock"),
        krate.join("Cargo.lock"),
    )
    .unwrap();
    // Kept between runs, so only the first run compiles the generator's dependencies.
    let target = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("build-probe");

    assert_eq!(build(krate, &target), 1);
    let probe = Command::new(target.join("debug/build-probe"))
        .output()
        .unwrap();
    let out_dir = PathBuf::from(String::from_utf8(probe.stdout).unwrap()).join("tidings");

    let cli_out = krate.join("cli-out");
    let cli = Command::new(env!("CARGO_BIN_EXE_tidings"))
        .arg("generate")
        .arg(krate.join("schemas"))
        .arg("--out")
        .arg(&cli_out)
        .output()
        .unwrap();
    assert!(
        cli.status.success(),
        "{}",
        String::from_utf8_lossy(&cli.stderr)
    );
    let from_build = files_in(&out_dir);
    assert_eq!(from_build.len(), 7);
    assert!(
        from_build == files_in(&cli_out),
        "build.rs and the CLI wrote different bytes"
    );

    assert_eq!(
        build(krate, &target),
        1,
        "a build with nothing changed reran the build script"
    );
    std::fs::write(krate.join("schemas/NOTES.md"), "not a schema\n").unwrap();
    assert_eq!(
        build(krate, &target),
        1,
        "a file the generator never read reran the build script"
    );

    let schema = krate.join("schemas/events/order/v1/order.proto");
    let mut text = std::fs::read_to_string(&schema).unwrap();
    text.push_str("\n// A comment that changes no code.\n");
    std::fs::write(&schema, text).unwrap();
    assert_eq!(
        build(krate, &target),
        2,
        "a changed schema did not rerun the build script"
    );
    assert!(
        files_in(&out_dir) == from_build,
        "a comment outside any declaration changed the code"
    );
}
