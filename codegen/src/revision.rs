//! A schema folder as it was at a git revision, copied into a temporary folder.
//!
//! The files come from `git ls-tree` and `git cat-file --batch`, so only the `.proto` files of
//! the folder are read, in one process whatever their number, without touching the work tree.

use std::io::{BufRead, BufReader, Read, Write};
use std::path::{Component, Path, PathBuf};
use std::process::{Command, Stdio};

use tempfile::TempDir;

use crate::error::Error;

/// The `.proto` files under `dir` as they were at `rev`, in a temporary folder laid out like
/// `dir`; `None` when `dir` held no `.proto` file at `rev`.
pub(crate) fn checkout(dir: &Path, rev: &str) -> Result<Option<TempDir>, Error> {
    let fail = |reason: String| Error::Revision {
        rev: rev.to_owned(),
        reason,
    };
    if rev.starts_with('-') || rev.is_empty() {
        return Err(fail("not a revision name".to_owned()));
    }
    let listing = run(dir, &["ls-tree", "-r", "-z", rev, "--", "."], None).map_err(&fail)?;
    // Each entry is `<mode> <type> <object>\t<path>`, paths relative to `dir`.
    let mut files: Vec<(PathBuf, String)> = Vec::new();
    for entry in listing.split(|&b| b == 0).filter(|e| !e.is_empty()) {
        let entry = String::from_utf8_lossy(entry);
        let Some((meta, name)) = entry.split_once('\t') else {
            continue;
        };
        let mut meta = meta.split(' ');
        let (kind, object) = (meta.nth(1), meta.next());
        let path = PathBuf::from(name);
        let inside = path.components().all(|c| matches!(c, Component::Normal(_)));
        if let (Some("blob"), Some(object)) = (kind, object)
            && inside
            && path.extension().is_some_and(|e| e == "proto")
        {
            files.push((path, object.to_owned()));
        }
    }
    if files.is_empty() {
        return Ok(None);
    }
    let objects: String = files.iter().map(|(_, o)| format!("{o}\n")).collect();
    let blobs = run(dir, &["cat-file", "--batch"], Some(objects)).map_err(&fail)?;
    // Removed when dropped; a leftover one is harmless, so a failure to remove it is not reported.
    let tree = tempfile::Builder::new()
        .prefix("tidings-revision-")
        .tempdir()
        .map_err(|e| fail(format!("cannot create a temporary folder: {e}")))?;
    let mut reader = BufReader::new(blobs.as_slice());
    for (path, object) in &files {
        let mut header = String::new();
        reader
            .read_line(&mut header)
            .map_err(|e| fail(e.to_string()))?;
        // `<object> blob <size>`
        let size: usize = header
            .trim_end()
            .strip_prefix(object.as_str())
            .and_then(|rest| rest.strip_prefix(" blob "))
            .and_then(|size| size.parse().ok())
            .ok_or_else(|| {
                fail(format!(
                    "unexpected `git cat-file` output `{}`",
                    header.trim_end()
                ))
            })?;
        let mut content = vec![0; size + 1];
        reader
            .read_exact(&mut content)
            .map_err(|e| fail(e.to_string()))?;
        content.pop();
        let target = tree.path().join(path);
        if let Some(parent) = target.parent() {
            std::fs::create_dir_all(parent).map_err(|e| fail(e.to_string()))?;
        }
        std::fs::write(&target, content).map_err(|e| fail(e.to_string()))?;
    }
    Ok(Some(tree))
}

/// Runs git in `dir`, feeding it `input`; its output, or why it failed.
fn run(dir: &Path, args: &[&str], input: Option<String>) -> Result<Vec<u8>, String> {
    let mut child = Command::new("git")
        .arg("-C")
        .arg(dir)
        .args(args)
        .stdin(if input.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("cannot run git: {e}"))?;
    // Written from another thread: git answers while it reads, and a full pipe would block both.
    let writer = match (input, child.stdin.take()) {
        (Some(input), Some(mut stdin)) => Some(std::thread::spawn(move || {
            stdin.write_all(input.as_bytes())
        })),
        _ => None,
    };
    let output = child
        .wait_with_output()
        .map_err(|e| format!("git failed: {e}"))?;
    if let Some(writer) = writer {
        writer
            .join()
            .map_err(|_| "writing to git failed".to_owned())?
            .map_err(|e| format!("writing to git failed: {e}"))?;
    }
    if !output.status.success() {
        let stderr = String::from_utf8_lossy(&output.stderr);
        return Err(format!(
            "`git {}` failed: {}",
            args.join(" "),
            stderr.trim()
        ));
    }
    Ok(output.stdout)
}
