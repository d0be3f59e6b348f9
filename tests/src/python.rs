//! The Python the interop tests run their other-stack services with: a venv under the target
//! folder with `tests/interop/requirements.txt` installed from PyPI, made on the first run and
//! again whenever the requirements change.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Mutex;

/// The folder of the interop scripts.
pub fn interop_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("interop")
}

/// The venv's python, with the requirements installed (once; the tests of a binary share it,
/// and a file lock would be needed across binaries only if they set it up at once, which the
/// stamp makes a no-op after the first).
pub fn python() -> PathBuf {
    static SETUP: Mutex<()> = Mutex::new(());
    let _one_at_a_time = SETUP.lock().unwrap_or_else(|e| e.into_inner());
    let venv = Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/interop-venv");
    let python = venv.join("bin/python");
    let requirements = interop_dir().join("requirements.txt");
    let stamp = venv.join("requirements.installed");
    let wanted = std::fs::read_to_string(&requirements).expect("tests/interop/requirements.txt");
    if std::fs::read_to_string(&stamp).ok().as_deref() != Some(wanted.as_str()) {
        output_of(Command::new("python3").args(["-m", "venv"]).arg(&venv));
        output_of(
            Command::new(&python)
                .args([
                    "-m",
                    "pip",
                    "install",
                    "--quiet",
                    "--disable-pip-version-check",
                    "-r",
                ])
                .arg(&requirements),
        );
        std::fs::write(&stamp, &wanted).expect("writing the venv stamp");
    }
    python
}

/// Runs `command` and returns its standard output; panics with both outputs if it fails.
pub fn output_of(command: &mut Command) -> String {
    let output = command
        .output()
        .unwrap_or_else(|e| panic!("{command:?}: {e}"));
    assert!(
        output.status.success(),
        "{command:?} failed:\n{}\n{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).into_owned()
}
