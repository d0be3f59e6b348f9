//! Parsing a schema folder with protox, reporting its errors as diagnostics.

use std::cell::RefCell;
use std::path::{Path, PathBuf};
use std::rc::Rc;

use miette::Diagnostic as _;
use prost_reflect::DescriptorPool;
use protox::Compiler;

use crate::diagnostic::{Diagnostic, Diagnostics};
use crate::error::Error;
use crate::sources::{OPTIONS_NAME, Resolver, Sources};

/// A schema folder, parsed as far as it could be.
pub(crate) struct Loaded {
    /// Every file that compiled, with its imports.
    pub(crate) pool: DescriptorPool,
    /// The names of the folder's own files, sorted (imports excluded).
    pub(crate) names: Vec<String>,
    /// The text of every file read, for diagnostics.
    pub(crate) sources: Rc<RefCell<Sources>>,
}

/// Parses every `.proto` file under `dir`, resolving imports against `dir`, then `includes`.
///
/// A file that fails to parse or import is reported and skipped, so one run reports the errors
/// of every file.
pub(crate) fn load(
    dir: &Path,
    includes: &[PathBuf],
    diagnostics: &mut Diagnostics,
) -> Result<Loaded, Error> {
    let names = proto_files(dir)?;
    let sources = Rc::new(RefCell::new(Sources::default()));
    let search = std::iter::once(dir.to_path_buf())
        .chain(includes.iter().cloned())
        .collect();
    let mut resolver = Resolver::new(search, Rc::clone(&sources));
    resolver.parse_ahead(&names);
    let mut compiler = Compiler::with_file_resolver(resolver);
    compiler.include_source_info(true).include_imports(true);
    for name in &names {
        if let Err(error) = compiler.open_file(name) {
            report(&error, &sources.borrow(), diagnostics);
        }
    }
    Ok(Loaded {
        pool: compiler.descriptor_pool(),
        names,
        sources,
    })
}

/// The `.proto` files under `dir`, as import names relative to it, sorted.
fn proto_files(dir: &Path) -> Result<Vec<String>, Error> {
    let mut names = Vec::new();
    let mut pending = vec![dir.to_path_buf()];
    while let Some(folder) = pending.pop() {
        let entries = std::fs::read_dir(&folder).map_err(|source| Error::ReadDir {
            path: folder.clone(),
            source,
        })?;
        for entry in entries {
            let entry = entry.map_err(|source| Error::ReadDir {
                path: folder.clone(),
                source,
            })?;
            let path = entry.path();
            let kind = entry.file_type().map_err(|source| Error::ReadDir {
                path: path.clone(),
                source,
            })?;
            if kind.is_dir() {
                pending.push(path);
            } else if path.extension().is_some_and(|ext| ext == "proto") {
                let relative = path.strip_prefix(dir).unwrap_or(&path);
                let parts: Option<Vec<&str>> = relative.iter().map(|p| p.to_str()).collect();
                let name = parts
                    .ok_or_else(|| Error::NonUtf8Path { path: path.clone() })?
                    .join("/");
                // A copy of the bundled options is not a schema of the folder.
                if name != OPTIONS_NAME {
                    names.push(name);
                }
            }
        }
    }
    if names.is_empty() {
        return Err(Error::NoSchemas {
            dir: dir.to_path_buf(),
        });
    }
    names.sort();
    Ok(names)
}

/// Turns a protox error, and the errors it carries along, into diagnostics.
fn report(error: &protox::Error, sources: &Sources, diagnostics: &mut Diagnostics) {
    let file = error.file().map(str::to_owned);
    let mut push = |message: String, diag: &dyn miette::Diagnostic| {
        let source = file.as_deref().and_then(|name| sources.get(name));
        let label = diag.labels().and_then(|mut labels| labels.next());
        let location = match (source, label) {
            (Some(source), Some(label)) => Some(source.location(label.offset(), label.len())),
            _ => None,
        };
        let message = match (&location, &file) {
            // Without a place in the source, at least name the file.
            (None, Some(name)) if !message.contains(name.as_str()) => {
                format!("{}: {message}", sources.display(name))
            }
            _ => message,
        };
        let mut d = Diagnostic::error(message, location);
        if let Some(help) = diag.help() {
            d = d.with_help(help.to_string());
        }
        diagnostics.push(d);
    };
    push(error.to_string(), error);
    if let Some(related) = error.related() {
        for diag in related {
            push(diag.to_string(), diag);
        }
    }
}
