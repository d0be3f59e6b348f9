//! Pointing a diagnostic at a declaration, through the descriptor's source code info.

use prost_reflect::MessageDescriptor;
use prost_types::FileDescriptorProto;

use crate::diagnostic::Location;
use crate::sources::{SourceFile, Sources};

/// The byte range a source code info span covers (`[line, col, end_col]` or
/// `[line, col, end_line, end_col]`, zero-based).
fn range(source: &SourceFile, span: &[i32]) -> Option<(usize, usize)> {
    let n = |i: usize| span.get(i).and_then(|&v| usize::try_from(v).ok());
    let (line, col) = (n(0)?, n(1)?);
    let (end_line, end_col) = if span.len() == 4 {
        (n(2)?, n(3)?)
    } else {
        (line, n(2)?)
    };
    Some((source.offset(line, col), source.offset(end_line, end_col)))
}

/// The span of the first declaration whose path starts with `path`.
fn span<'a>(file: &'a FileDescriptorProto, path: &[i32]) -> Option<&'a [i32]> {
    let info = file.source_code_info.as_ref()?;
    info.location
        .iter()
        .find(|l| l.path.starts_with(path))
        .map(|l| l.span.as_slice())
}

/// The declaration at `path` (`[4, 0, 1]`: the first message's name) in the file imported as
/// `name`, marked whole on its first line.
pub(crate) fn declaration(
    sources: &Sources,
    file: &FileDescriptorProto,
    path: &[i32],
) -> Option<Location> {
    let source = sources.get(file.name())?;
    let (start, end) = range(source, span(file, path)?)?;
    let first_line = source.slice(start, end).split('\n').next().unwrap_or("");
    Some(source.location(start, first_line.len()))
}

/// The name of `message` where it is declared.
pub(crate) fn message_name(sources: &Sources, message: &MessageDescriptor) -> Option<Location> {
    let path = [message.path(), &[1]].concat();
    declaration(sources, message.parent_file_descriptor_proto(), &path)
}

/// A string literal with the value `value` inside the declaration at `path`, such as the topic in
/// `option (tidings.event) = { topic: "..." };`; marks byte `at` of the value, or all of it.
///
/// Falls back to the whole declaration when the literal is not written plainly (escapes, or a
/// value split over several literals).
pub(crate) fn literal(
    sources: &Sources,
    file: &FileDescriptorProto,
    path: &[i32],
    value: &str,
    at: Option<(usize, usize)>,
) -> Option<Location> {
    let source = sources.get(file.name())?;
    let (start, end) = range(source, span(file, path)?)?;
    let text = source.slice(start, end);
    let found = ['"', '\'']
        .iter()
        .find_map(|q| text.find(&format!("{q}{value}{q}")))
        .map(|i| start + i + 1);
    match found {
        Some(value_start) => Some(match at {
            Some((offset, len)) => source.location(value_start + offset, len),
            None => source.location(value_start, value.len()),
        }),
        None => declaration(sources, file, path),
    }
}
