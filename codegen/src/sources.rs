//! Where schema files come from, and the text of each one read.
//!
//! Files are looked up in the schema folder, then in the include paths, then among the files the
//! code generator bundles (`tidings/options.proto`) and the protobuf well-known types. The text
//! of every file read is kept, so that a diagnostic can quote the line it points at and a build
//! script can name exactly the files it depends on.

use std::cell::RefCell;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::rc::Rc;

use protox::file::{File, FileResolver, GoogleFileResolver};

use crate::diagnostic::Location;
use crate::parallel;

/// The name under which schemas import the bundled options.
pub(crate) const OPTIONS_NAME: &str = "tidings/options.proto";
const OPTIONS_SOURCE: &str = include_str!("../proto/tidings/options.proto");

/// A file's text, and where each of its lines starts.
#[derive(Debug)]
pub(crate) struct SourceFile {
    /// The path as read, or the import name for a bundled file.
    display: String,
    text: String,
    line_starts: Vec<usize>,
}

impl SourceFile {
    fn new(display: String, text: String) -> Self {
        let line_starts = std::iter::once(0)
            .chain(text.match_indices('\n').map(|(i, _)| i + 1))
            .collect();
        SourceFile {
            display,
            text,
            line_starts,
        }
    }

    /// The location of `len` bytes at byte `offset`.
    pub(crate) fn location(&self, offset: usize, len: usize) -> Location {
        let offset = floor_char_boundary(&self.text, offset.min(self.text.len()));
        let line = self.line_starts.partition_point(|&start| start <= offset) - 1;
        let start = self.line_starts[line];
        let end = self.text[start..]
            .find('\n')
            .map_or(self.text.len(), |n| start + n);
        let text = self.text[start..end].trim_end_matches('\r');
        let column = self.text[start..offset].chars().count() + 1;
        let marked_end = floor_char_boundary(&self.text, (offset + len).min(start + text.len()));
        let marked = self.text[offset..marked_end.max(offset)].chars().count();
        Location::new(
            self.display.clone(),
            line + 1,
            column,
            marked,
            text.to_owned(),
        )
    }

    /// The byte offset of a zero-based line and byte column, as descriptors count them.
    pub(crate) fn offset(&self, line: usize, column: usize) -> usize {
        let start = self
            .line_starts
            .get(line)
            .copied()
            .unwrap_or(self.text.len());
        (start + column).min(self.text.len())
    }

    /// The text between two byte offsets.
    pub(crate) fn slice(&self, start: usize, end: usize) -> &str {
        let start = floor_char_boundary(&self.text, start.min(self.text.len()));
        let end = floor_char_boundary(&self.text, end.min(self.text.len()));
        &self.text[start..end.max(start)]
    }
}

fn floor_char_boundary(text: &str, mut at: usize) -> usize {
    while !text.is_char_boundary(at) {
        at -= 1;
    }
    at
}

/// What the resolver has read so far.
#[derive(Debug, Default)]
pub(crate) struct Sources {
    files: BTreeMap<String, SourceFile>,
    /// Paths on disk that were read, in the order read.
    read: Vec<PathBuf>,
    /// The same paths, to find one in constant time however many files a folder has.
    seen: HashSet<PathBuf>,
}

impl Sources {
    /// The file imported as `name`, when its text was read.
    pub(crate) fn get(&self, name: &str) -> Option<&SourceFile> {
        self.files.get(name)
    }

    /// The display path of the file imported as `name`.
    pub(crate) fn display(&self, name: &str) -> String {
        self.files
            .get(name)
            .map_or_else(|| name.to_owned(), |f| f.display.clone())
    }

    /// Every path on disk that was read.
    pub(crate) fn read_paths(&self) -> &[PathBuf] {
        &self.read
    }
}

/// Resolves imports against the schema folder, the include paths, the bundled options and the
/// well-known types, in that order, recording each file read into shared [`Sources`].
pub(crate) struct Resolver {
    includes: Vec<PathBuf>,
    google: GoogleFileResolver,
    sources: Rc<RefCell<Sources>>,
    /// Files read and parsed ahead of the compiler asking for them, by import name.
    ahead: RefCell<HashMap<String, Read>>,
}

/// A file found on disk, read and parsed.
type Read = (PathBuf, Result<Parsed, protox::Error>);

/// A file's text, and the file parsed from it (or why it does not parse).
type Parsed = (String, Result<File, protox::Error>);

impl Resolver {
    pub(crate) fn new(includes: Vec<PathBuf>, sources: Rc<RefCell<Sources>>) -> Self {
        Resolver {
            includes,
            google: GoogleFileResolver::new(),
            sources,
            ahead: RefCell::new(HashMap::new()),
        }
    }

    /// Reads and parses the files `names` on every core, before the compiler, which takes one
    /// file at a time, asks for them; what it then asks for is found here as if read then.
    pub(crate) fn parse_ahead(&mut self, names: &[String]) {
        let includes = &self.includes;
        let read = parallel::map(names, |name| {
            let path = find(includes, name)?;
            let file = read(&path, name);
            Some((name.clone(), (path, file)))
        });
        self.ahead.get_mut().extend(read.into_iter().flatten());
    }

    fn record(&self, name: &str, display: String, text: String, path: Option<PathBuf>) {
        let mut sources = self.sources.borrow_mut();
        if let Some(path) = path
            && sources.seen.insert(path.clone())
        {
            sources.read.push(path);
        }
        sources
            .files
            .insert(name.to_owned(), SourceFile::new(display, text));
    }
}

impl FileResolver for Resolver {
    fn resolve_path(&self, path: &Path) -> Option<String> {
        self.includes.iter().find_map(|include| {
            let relative = path.strip_prefix(include).ok()?;
            let parts: Option<Vec<&str>> = relative.iter().map(|part| part.to_str()).collect();
            Some(parts?.join("/"))
        })
    }

    fn open_file(&self, name: &str) -> Result<File, protox::Error> {
        // The bundled options come first, so the generator always reads the extension numbers it
        // defines, even where a schema folder keeps a copy of the file.
        if name == OPTIONS_NAME {
            self.record(name, name.to_owned(), OPTIONS_SOURCE.to_owned(), None);
            return File::from_source(name, OPTIONS_SOURCE);
        }
        let ahead = self.ahead.borrow_mut().remove(name);
        let Some((path, read)) = ahead.or_else(|| {
            let path = find(&self.includes, name)?;
            let file = read(&path, name);
            Some((path, file))
        }) else {
            return self.google.open_file(name);
        };
        // Recorded even when it does not parse, so that a diagnostic can quote it.
        let (text, file) = read?;
        self.record(name, path.display().to_string(), text, Some(path));
        file
    }
}

/// Where the file imported as `name` is on disk: in the first of `includes` that has it.
fn find(includes: &[PathBuf], name: &str) -> Option<PathBuf> {
    includes
        .iter()
        .map(|include| include.join(name))
        .find(|path| path.is_file())
}

/// The text of the file at `path`, and the file parsed from it under the import name `name`.
fn read(path: &Path, name: &str) -> Result<Parsed, protox::Error> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| protox::Error::new(format!("cannot read `{}`: {e}", path.display())))?;
    let file = File::from_source(name, &text);
    Ok((text, file))
}
