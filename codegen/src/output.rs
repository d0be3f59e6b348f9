//! Generated files in memory, and writing them where only a change rewrites a file.

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};

use crate::catalog::{EventInfo, RpcInfo};
use crate::diagnostic::Diagnostics;
use crate::error::Error;
use crate::generate::HEADER;

/// The code generated from a schema folder, not yet written.
#[derive(Debug)]
pub struct Generated {
    pub(crate) files: BTreeMap<String, Vec<u8>>,
    pub(crate) events: Vec<EventInfo>,
    pub(crate) rpcs: Vec<RpcInfo>,
    pub(crate) warnings: Diagnostics,
    pub(crate) read: Vec<PathBuf>,
}

/// What writing changed in a folder.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Written {
    /// Files created or rewritten because their content changed.
    pub changed: Vec<PathBuf>,
    /// Files already holding the generated content, left untouched.
    pub unchanged: Vec<PathBuf>,
    /// Files an earlier generation wrote that no package needs any more, removed.
    pub removed: Vec<PathBuf>,
}

/// Why a file in an output folder does not match the schemas.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Stale {
    /// The file should exist and does not.
    Missing(PathBuf),
    /// The file's content differs from what the schemas generate.
    Differs(PathBuf),
    /// A generated file that no package needs any more.
    Leftover(PathBuf),
}

impl fmt::Display for Stale {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Stale::Missing(p) => write!(f, "{} is missing", p.display()),
            Stale::Differs(p) => {
                write!(f, "{} differs from what the schemas generate", p.display())
            }
            Stale::Leftover(p) => write!(
                f,
                "{} was generated for a package that no longer exists",
                p.display()
            ),
        }
    }
}

impl Generated {
    /// The files, by name relative to the output folder, in name order: one Rust file per
    /// package, `mod.rs`, and `descriptors.bin`, the encoded descriptors the JSON mapping reads.
    pub fn files(&self) -> impl Iterator<Item = (&str, &[u8])> {
        self.files
            .iter()
            .map(|(name, code)| (name.as_str(), code.as_slice()))
    }

    /// The events, in the order of their files and declarations.
    pub fn events(&self) -> &[EventInfo] {
        &self.events
    }

    /// The request-reply operations, in the order of their files and declarations.
    pub fn rpcs(&self) -> &[RpcInfo] {
        &self.rpcs
    }

    /// Warnings about the schemas; errors would have stopped generation.
    pub fn warnings(&self) -> &Diagnostics {
        &self.warnings
    }

    /// Every file read from disk: the schemas and the imports they reached.
    pub fn read_paths(&self) -> &[PathBuf] {
        &self.read
    }

    /// Writes the files into `dir`, creating it, rewriting only files whose content changed
    /// (so their modification time says when the schemas last changed), and removing files an
    /// earlier generation wrote that no package needs any more.
    pub fn write(&self, dir: &Path) -> Result<Written, Error> {
        let io = |path: &Path| {
            let path = path.to_path_buf();
            move |source| Error::Write { path, source }
        };
        std::fs::create_dir_all(dir).map_err(io(dir))?;
        let mut written = Written::default();
        for (name, code) in &self.files {
            let path = dir.join(name);
            if std::fs::read(&path).is_ok_and(|old| old == *code) {
                written.unchanged.push(path);
            } else {
                std::fs::write(&path, code).map_err(io(&path))?;
                written.changed.push(path);
            }
        }
        for path in self.leftovers(dir)? {
            std::fs::remove_file(&path).map_err(io(&path))?;
            written.removed.push(path);
        }
        Ok(written)
    }

    /// How `dir` differs from what the schemas generate; empty when it is up to date.
    pub fn stale(&self, dir: &Path) -> Result<Vec<Stale>, Error> {
        let mut stale = Vec::new();
        for (name, code) in &self.files {
            let path = dir.join(name);
            match std::fs::read(&path) {
                Ok(old) if old == *code => {}
                Ok(_) => stale.push(Stale::Differs(path)),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                    stale.push(Stale::Missing(path));
                }
                // A file that is there but cannot be read is no reason to call it missing.
                Err(source) => return Err(Error::Read { path, source }),
            }
        }
        if dir.is_dir() {
            stale.extend(self.leftovers(dir)?.into_iter().map(Stale::Leftover));
        }
        Ok(stale)
    }

    /// Files in `dir` that start with the generated header but are not among the files.
    fn leftovers(&self, dir: &Path) -> Result<Vec<PathBuf>, Error> {
        let entries = std::fs::read_dir(dir).map_err(|source| Error::ReadDir {
            path: dir.to_path_buf(),
            source,
        })?;
        let mut leftovers = Vec::new();
        for entry in entries {
            let path = entry
                .map_err(|source| Error::ReadDir {
                    path: dir.to_path_buf(),
                    source,
                })?
                .path();
            let known = path
                .file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| self.files.contains_key(n));
            if known || path.extension().is_none_or(|e| e != "rs") {
                continue;
            }
            let generated = std::fs::read_to_string(&path)
                .is_ok_and(|text| text.lines().next() == Some(HEADER));
            if generated {
                leftovers.push(path);
            }
        }
        leftovers.sort();
        Ok(leftovers)
    }
}
