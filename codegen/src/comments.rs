//! The comments written above declarations, read from the descriptors' source code info.

use prost_types::FileDescriptorProto;

/// The comment above the declaration at `path` (`[4, 0]`: the file's first message), without
/// its `//` markers and common indentation; `None` when there is none.
pub(crate) fn leading(file: &FileDescriptorProto, path: &[i32]) -> Option<String> {
    let info = file.source_code_info.as_ref()?;
    let location = info.location.iter().find(|l| l.path == path)?;
    let text = location.leading_comments.as_deref()?;
    let lines: Vec<&str> = text
        .lines()
        .map(|line| line.strip_prefix(' ').unwrap_or(line).trim_end())
        .collect();
    let text = lines.join("\n").trim().to_owned();
    (!text.is_empty()).then_some(text)
}

/// The first sentence of a comment, on one line, for summaries.
pub(crate) fn summary(comment: &str) -> String {
    let flat = comment.split_whitespace().collect::<Vec<_>>().join(" ");
    match flat.find(". ") {
        Some(end) => flat[..=end].to_owned(),
        None => flat,
    }
}
