//! Compiler-style diagnostics: what is wrong, where (`file:line:col`) and the source line.

use std::fmt;

/// How serious a diagnostic is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Severity {
    /// Worth fixing; code is still generated.
    Warning,
    /// The schemas cannot be compiled into events until it is fixed.
    Error,
}

impl fmt::Display for Severity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Severity::Warning => "warning",
            Severity::Error => "error",
        })
    }
}

/// A place in a schema file, with the line it is on.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Location {
    file: String,
    line: usize,
    column: usize,
    len: usize,
    text: String,
}

impl Location {
    /// `line` and `column` count from 1, `column` in characters; `len` characters are marked.
    pub(crate) fn new(file: String, line: usize, column: usize, len: usize, text: String) -> Self {
        Location {
            file,
            line,
            column,
            len: len.max(1),
            text,
        }
    }

    /// The file, as the path it was read from.
    pub fn file(&self) -> &str {
        &self.file
    }

    /// The line, counting from 1.
    pub fn line(&self) -> usize {
        self.line
    }

    /// The column, counting from 1, in characters.
    pub fn column(&self) -> usize {
        self.column
    }
}

impl fmt::Display for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}:{}", self.file, self.line, self.column)
    }
}

/// One problem found in the schemas.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Diagnostic {
    severity: Severity,
    message: String,
    location: Option<Location>,
    notes: Vec<(String, Option<Location>)>,
    help: Option<String>,
}

impl Diagnostic {
    pub(crate) fn error(message: impl Into<String>, location: Option<Location>) -> Self {
        Diagnostic::new(Severity::Error, message.into(), location)
    }

    pub(crate) fn warning(message: impl Into<String>, location: Option<Location>) -> Self {
        Diagnostic::new(Severity::Warning, message.into(), location)
    }

    fn new(severity: Severity, message: String, location: Option<Location>) -> Self {
        Diagnostic {
            severity,
            message,
            location,
            notes: Vec::new(),
            help: None,
        }
    }

    /// Adds a note, shown after the main message with its own location.
    pub(crate) fn with_note(mut self, note: impl Into<String>, location: Option<Location>) -> Self {
        self.notes.push((note.into(), location));
        self
    }

    /// Adds a line telling how to fix it.
    pub(crate) fn with_help(mut self, help: impl Into<String>) -> Self {
        self.help = Some(help.into());
        self
    }

    /// Whether it is an error or a warning.
    pub fn severity(&self) -> Severity {
        self.severity
    }

    /// What is wrong, in one line.
    pub fn message(&self) -> &str {
        &self.message
    }

    /// Where, when it concerns one place in a file.
    pub fn location(&self) -> Option<&Location> {
        self.location.as_ref()
    }

    /// One line for places that take no snippet, such as `cargo:warning=`.
    pub fn summary(&self) -> String {
        match &self.location {
            Some(at) => format!("{at}: {}: {}", self.severity, self.message),
            None => format!("{}: {}", self.severity, self.message),
        }
    }
}

/// Writes the ` --> file:line:col` header, the source line and the marker under it.
fn snippet(f: &mut fmt::Formatter<'_>, at: &Location) -> fmt::Result {
    let number = at.line.to_string();
    let pad = " ".repeat(number.len());
    writeln!(f, "{pad}--> {at}")?;
    writeln!(f, "{pad} |")?;
    writeln!(f, "{number} | {}", at.text)?;
    // Tabs keep their width so the marker lines up under the text.
    let indent: String = at
        .text
        .chars()
        .take(at.column.saturating_sub(1))
        .map(|c| if c == '\t' { '\t' } else { ' ' })
        .collect();
    writeln!(f, "{pad} | {indent}{}", "^".repeat(at.len))
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "{}: {}", self.severity, self.message)?;
        if let Some(at) = &self.location {
            snippet(f, at)?;
        }
        if let Some(help) = &self.help {
            // Under the snippet's gutter, as compilers align it.
            let pad = self
                .location
                .as_ref()
                .map_or(1, |at| at.line.to_string().len());
            writeln!(f, "{} = help: {help}", " ".repeat(pad))?;
        }
        for (note, at) in &self.notes {
            writeln!(f, "note: {note}")?;
            if let Some(at) = at {
                snippet(f, at)?;
            }
        }
        Ok(())
    }
}

/// The diagnostics of one run, in the order found.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Diagnostics(Vec<Diagnostic>);

impl Diagnostics {
    pub(crate) fn push(&mut self, diagnostic: Diagnostic) {
        // A file imported by several others fails once per import; say it once.
        if !self.0.contains(&diagnostic) {
            self.0.push(diagnostic);
        }
    }

    /// Every diagnostic, errors and warnings.
    pub fn iter(&self) -> std::slice::Iter<'_, Diagnostic> {
        self.0.iter()
    }

    /// How many errors there are.
    pub fn error_count(&self) -> usize {
        self.0
            .iter()
            .filter(|d| d.severity == Severity::Error)
            .count()
    }

    /// How many warnings there are.
    pub fn warning_count(&self) -> usize {
        self.0
            .iter()
            .filter(|d| d.severity == Severity::Warning)
            .count()
    }

    /// Whether there is at least one error.
    pub fn has_errors(&self) -> bool {
        self.error_count() > 0
    }

    /// Whether there is nothing to report.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl<'a> IntoIterator for &'a Diagnostics {
    type Item = &'a Diagnostic;
    type IntoIter = std::slice::Iter<'a, Diagnostic>;
    fn into_iter(self) -> Self::IntoIter {
        self.0.iter()
    }
}

impl fmt::Display for Diagnostics {
    /// Every diagnostic, a blank line between them, then a count.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for d in &self.0 {
            writeln!(f, "{d}")?;
        }
        let (errors, warnings) = (self.error_count(), self.warning_count());
        let plural = |n: usize| if n == 1 { "" } else { "s" };
        match (errors, warnings) {
            (0, 0) => Ok(()),
            (0, w) => writeln!(f, "{w} warning{}", plural(w)),
            (e, 0) => writeln!(f, "{e} error{}", plural(e)),
            (e, w) => writeln!(f, "{e} error{}, {w} warning{}", plural(e), plural(w)),
        }
    }
}
