//! prost-build's code for one package, formatted as prettyplease formats it, formatting only
//! what needs it.
//!
//! prost-build writes one declaration a line, indented by nesting, and most of its lines are
//! already what prettyplease prints; parsing all of it with syn to print it again was most of
//! the generator's time. Here each line of a shape known to print unchanged is kept, indented
//! by its depth as prettyplease indents; a field, variant or attribute list too long for the
//! margin is formatted by prettyplease alone, inside the smallest code that gives it the same
//! depth; and a package holding any line of another shape goes through prettyplease whole. The
//! tests hold the result to prettyplease's own on the shapes prost-build writes.

use std::collections::HashMap;

/// The widest line kept as written. prettyplease breaks what does not fit 89 columns (60 past
/// the indentation when deeper than 29), so a line of at most 80 never breaks at any depth.
const KEPT_WIDTH: usize = 80;

/// The indentation of one level, as prettyplease writes it.
const INDENT: &str = "    ";

/// `code` (prost-build's output for one package, without its header line) formatted as
/// `prettyplease::unparse(&syn::parse_file(code)?)` formats it.
pub(crate) fn format(code: &str) -> Result<String, syn::Error> {
    // Line ends other than `\n` are left to prettyplease.
    let lines = if code.contains('\r') {
        None
    } else {
        Lines::default().format(code)
    };
    match lines {
        Some(formatted) => Ok(formatted),
        None => whole(code),
    }
}

/// The code through syn and prettyplease, whole.
fn whole(code: &str) -> Result<String, syn::Error> {
    Ok(prettyplease::unparse(&syn::parse_file(code)?))
}

/// What a line is inside of.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Scope {
    Module,
    Struct,
    Enum,
    Impl,
    Fn,
    Match,
}

/// The line-by-line formatter; `None` from a step means the code holds something it does not
/// know to keep, and goes through prettyplease whole.
#[derive(Default)]
struct Lines {
    out: String,
    /// The scopes open, each with whether it has held a declaration yet.
    scopes: Vec<(Scope, bool)>,
    /// Attribute and doc lines waiting for what they are attached to.
    pending: Vec<String>,
    /// Pieces formatted by prettyplease, by depth and text: an enum's derive list, for one, is
    /// the same throughout a package.
    formatted: HashMap<(usize, String), String>,
}

impl Lines {
    fn format(mut self, code: &str) -> Option<String> {
        self.out.reserve(code.len() + code.len() / 8);
        for line in code.lines() {
            self.line(line.trim_start())?;
        }
        (self.scopes.is_empty() && self.pending.is_empty()).then_some(self.out)
    }

    fn scope(&self) -> Scope {
        self.scopes
            .last()
            .map_or(Scope::Module, |(scope, _)| *scope)
    }

    fn depth(&self) -> usize {
        self.scopes.len()
    }

    fn line(&mut self, line: &str) -> Option<()> {
        if line.starts_with("///") {
            return self.doc(line);
        }
        if line.starts_with("#[") {
            let known =
                attribute(line) || (line == "#[repr(i32)]" && self.scope() == Scope::Module);
            return known.then(|| self.pending.push(line.to_owned()));
        }
        if line == "}" {
            return self.close();
        }
        match self.scope() {
            Scope::Module => {
                let scope = header(line)?;
                self.declared();
                self.attributes_then(line)?;
                self.scopes.push((scope, false));
            }
            Scope::Struct => {
                let field = line.strip_prefix("pub ")?.strip_suffix(',')?;
                let (name, ty) = field.split_once(": ")?;
                (ident(name) && is_type(ty)).then_some(())?;
                self.member(line, "struct")?;
            }
            Scope::Enum => {
                let variant = line.strip_suffix(',')?;
                let known = match variant.split_once(" = ") {
                    Some((name, value)) => ident(name) && integer(value),
                    None => variant
                        .strip_suffix(')')
                        .and_then(|v| v.split_once('('))
                        .is_some_and(|(name, ty)| ident(name) && is_type(ty)),
                };
                known.then_some(())?;
                self.member(line, "enum")?;
            }
            Scope::Impl => {
                let known = line == "pub fn as_str_name(&self) -> &'static str {"
                    || line
                        == "pub fn from_str_name(value: &str) -> ::core::option::Option<Self> {";
                known.then_some(())?;
                self.declared();
                self.attributes_then(line)?;
                self.scopes.push((Scope::Fn, false));
            }
            Scope::Fn => {
                (line == "match self {" || line == "match value {").then_some(())?;
                self.pending.is_empty().then_some(())?;
                self.declared();
                self.kept(line)?;
                self.scopes.push((Scope::Match, false));
            }
            Scope::Match => {
                self.pending.is_empty().then_some(())?;
                arm(line).then_some(())?;
                self.declared();
                self.kept(line)?;
            }
        }
        Some(())
    }

    /// A doc comment line, which prettyplease prints as written, however long, unless it ends
    /// in spaces (trimmed) or is a plain comment (`////`, dropped).
    fn doc(&mut self, line: &str) -> Option<()> {
        let plain = line.starts_with("////") || line.ends_with([' ', '\t', '\r']);
        (!plain
            && matches!(
                self.scope(),
                Scope::Module | Scope::Struct | Scope::Enum | Scope::Impl
            ))
        .then(|| self.pending.push(line.to_owned()))
    }

    /// Marks the innermost scope as holding a declaration.
    fn declared(&mut self) {
        if let Some((_, filled)) = self.scopes.last_mut() {
            *filled = true;
        }
    }

    fn close(&mut self) -> Option<()> {
        let (_, filled) = self.scopes.pop()?;
        // An empty body prints as `{}` on the line that opens it.
        (filled && self.pending.is_empty()).then_some(())?;
        self.kept("}")
    }

    /// Writes `line` at the current depth, if it is short enough to be kept as written.
    fn kept(&mut self, line: &str) -> Option<()> {
        let indent = INDENT.len() * self.depth();
        (indent + line.len() <= KEPT_WIDTH).then_some(())?;
        self.indented(line);
        Some(())
    }

    fn indented(&mut self, line: &str) {
        for _ in 0..self.depth() {
            self.out.push_str(INDENT);
        }
        self.out.push_str(line);
        self.out.push('\n');
    }

    /// The pending attributes, then the line that opens a declaration.
    fn attributes_then(&mut self, line: &str) -> Option<()> {
        let pending = std::mem::take(&mut self.pending);
        let depth = self.depth();
        if pending.iter().all(|a| fits(depth, a)) {
            for attribute in &pending {
                self.indented(attribute);
            }
        } else {
            // Attributes print the same before any item; a unit struct stands in for this one.
            let text = format!("{}\nstruct S;", pending.join("\n"));
            let formatted = self.piece(depth, &text, None, "struct S;")?;
            self.out.push_str(&formatted);
        }
        self.kept(line)
    }

    /// A field of a struct or a variant of an enum (`container`), with its attributes.
    fn member(&mut self, line: &str, container: &str) -> Option<()> {
        self.declared();
        let pending = std::mem::take(&mut self.pending);
        let depth = self.depth();
        if pending.iter().all(|a| fits(depth, a)) && fits(depth, line) {
            for attribute in &pending {
                self.indented(attribute);
            }
            self.indented(line);
            return Some(());
        }
        let text = format!("{}\n{line}", pending.join("\n"));
        let formatted = self.piece(depth - 1, &text, Some(container), "}")?;
        self.out.push_str(&formatted);
        Some(())
    }

    /// `text` formatted by prettyplease at `depth` (inside `container`, a `struct` or an
    /// `enum`, when given), its lines up to the line `end` leaves off.
    fn piece(
        &mut self,
        depth: usize,
        text: &str,
        container: Option<&str>,
        end: &str,
    ) -> Option<String> {
        let key = (depth, format!("{container:?}\n{text}"));
        if let Some(done) = self.formatted.get(&key) {
            return Some(done.clone());
        }
        let mut code = "mod m {\n".repeat(depth);
        if let Some(container) = container {
            code.push_str(&format!("{container} S {{\n{text}\n}}\n"));
        } else {
            code.push_str(text);
            code.push('\n');
        }
        code.push_str(&"}\n".repeat(depth));
        let formatted = whole(&code).ok()?;
        let mut lines = formatted.lines();
        for level in 0..depth {
            (lines.next()? == format!("{}mod m {{", INDENT.repeat(level))).then_some(())?;
        }
        let inner = depth + usize::from(container.is_some());
        if let Some(container) = container {
            (lines.next()? == format!("{}{container} S {{", INDENT.repeat(depth))).then_some(())?;
        }
        let end = format!("{}{end}", INDENT.repeat(depth));
        let mut done = String::new();
        loop {
            let line = lines.next()?;
            if line == end {
                break;
            }
            line.starts_with(&INDENT.repeat(inner)).then_some(())?;
            done.push_str(line);
            done.push('\n');
        }
        self.formatted.insert(key, done.clone());
        Some(done)
    }
}

/// Whether `line` at `depth` is short enough to keep; doc comments always are.
fn fits(depth: usize, line: &str) -> bool {
    line.starts_with("///") || INDENT.len() * depth + line.len() <= KEPT_WIDTH
}

/// The scope a declaration line opens.
fn header(line: &str) -> Option<Scope> {
    let body = line.strip_suffix(" {")?;
    let (scope, name) = if let Some(name) = body.strip_prefix("pub struct ") {
        (Scope::Struct, name)
    } else if let Some(name) = body.strip_prefix("pub enum ") {
        (Scope::Enum, name)
    } else if let Some(name) = body.strip_prefix("pub mod ") {
        (Scope::Module, name)
    } else {
        (Scope::Impl, body.strip_prefix("impl ")?)
    };
    ident(name).then_some(scope)
}

/// An attribute prost-build writes: `#[derive(paths)]`, `#[prost(args)]`, `#[deprecated]`.
fn attribute(line: &str) -> bool {
    if line == "#[deprecated]" {
        return true;
    }
    if let Some(list) = line
        .strip_prefix("#[derive(")
        .and_then(|l| l.strip_suffix(")]"))
    {
        return list.split(", ").all(path);
    }
    let Some(args) = line
        .strip_prefix("#[prost(")
        .and_then(|l| l.strip_suffix(")]"))
    else {
        return false;
    };
    // Split at the commas outside string literals: `tags = "1, 2"` is one argument.
    let mut rest = args;
    loop {
        let (name, after) = match rest.find([',', ' ']) {
            Some(at) => (&rest[..at], &rest[at..]),
            None => (rest, ""),
        };
        if !ident(name) {
            return false;
        }
        rest = after;
        if let Some(value) = rest.strip_prefix(" = \"") {
            let Some(close) = value.find(['"', '\\']) else {
                return false;
            };
            if value.as_bytes()[close] != b'"' {
                return false;
            }
            rest = &value[close + 1..];
        }
        if rest.is_empty() {
            return true;
        }
        match rest.strip_prefix(", ") {
            Some(next) => rest = next,
            None => return false,
        }
    }
}

/// A match arm of the enum's name functions.
fn arm(line: &str) -> bool {
    if line == "_ => None," {
        return true;
    }
    if let Some(rest) = line.strip_prefix("Self::") {
        return rest
            .strip_suffix("\",")
            .and_then(|r| r.split_once(" => \""))
            .is_some_and(|(name, value)| ident(name) && plain_string(value));
    }
    line.strip_prefix('"')
        .and_then(|r| r.strip_suffix("),"))
        .and_then(|r| r.split_once("\" => Some(Self::"))
        .is_some_and(|(value, name)| plain_string(value) && ident(name))
}

/// A string literal's content without quotes or escapes.
fn plain_string(text: &str) -> bool {
    !text.contains(['"', '\\'])
}

/// An identifier, raw (`r#type`) or not.
fn ident(text: &str) -> bool {
    let name = text.strip_prefix("r#").unwrap_or(text);
    let mut chars = name.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// A decimal integer, maybe negative.
fn integer(text: &str) -> bool {
    let digits = text.strip_prefix('-').unwrap_or(text);
    !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit())
}

/// A path without generics: `::a::b::C`.
fn path(text: &str) -> bool {
    let text = text.strip_prefix("::").unwrap_or(text);
    text.split("::").all(ident)
}

/// A type as prost-build writes one: a path whose segments may carry type arguments, written
/// `Name<A, B>`, as prettyplease prints them.
fn is_type(text: &str) -> bool {
    ty(text) == Some("")
}

/// Parses a type at the start of `text`, returning what follows it.
fn ty(text: &str) -> Option<&str> {
    let mut rest = text.strip_prefix("::").unwrap_or(text);
    loop {
        let end = rest
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_' || c == '#'))
            .unwrap_or(rest.len());
        ident(&rest[..end]).then_some(())?;
        rest = &rest[end..];
        if let Some(arguments) = rest.strip_prefix('<') {
            rest = ty(arguments)?;
            while let Some(next) = rest.strip_prefix(", ") {
                rest = ty(next)?;
            }
            rest = rest.strip_prefix('>')?;
        }
        match rest.strip_prefix("::") {
            Some(next) => rest = next,
            None => return Some(rest),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// prost-build's unformatted code for `source`, with the paths tidings sets.
    fn prost_code(source: &str) -> Vec<String> {
        let mut compiler = protox::Compiler::with_file_resolver(SingleFile(source.to_owned()));
        compiler.include_source_info(true).include_imports(true);
        compiler.open_file("test.proto").unwrap();
        let requests = compiler
            .file_descriptor_set()
            .file
            .into_iter()
            .map(|f| {
                (
                    prost_build::Module::from_protobuf_package_name(f.package()),
                    f,
                )
            })
            .collect();
        let mut modules: Vec<_> = prost_build::Config::new()
            .prost_path("::tidings::__private::prost")
            .prost_types_path("::tidings::well_known")
            .format(false)
            .generate(requests)
            .unwrap()
            .into_iter()
            .collect();
        modules.sort();
        modules.into_iter().map(|(_, code)| code).collect()
    }

    struct SingleFile(String);

    impl protox::file::FileResolver for SingleFile {
        fn open_file(&self, name: &str) -> Result<protox::file::File, protox::Error> {
            if name == "test.proto" {
                return protox::file::File::from_source(name, &self.0);
            }
            protox::file::GoogleFileResolver::new().open_file(name)
        }
    }

    /// Formats each module both ways; returns whether the lines were kept.
    fn same_as_prettyplease(source: &str) -> bool {
        let mut kept = true;
        for code in prost_code(source) {
            let code = code
                .strip_prefix("// This file is @generated by prost-build.\n")
                .unwrap();
            assert_eq!(format(code).unwrap(), whole(code).unwrap(), "{code}");
            kept &= Lines::default().format(code).is_some();
        }
        kept
    }

    #[test]
    fn what_prost_build_writes_is_formatted_as_prettyplease_formats_it() {
        let kept = same_as_prettyplease(
            r#"
            syntax = "proto3";
            package events.shop_with_a_rather_long_package_name.v1;
            import "google/protobuf/timestamp.proto";
            import "google/protobuf/wrappers.proto";

            // An order was placed.
            //   Indented, with `code` and [a link](https://example.com).
            message OrderPlacedWithAVeryLongMessageNameIndeed {
              // A nested message.
              message LineItemOfTheOrderThatWasPlaced {
                message DeeperStill { message Deepest { map<string, string> labels = 1; } Deepest deepest = 1; }
                string sku = 1;
                repeated string tags_of_the_line_item = 2;
                DeeperStill deeper = 3;
              }
              enum Reason { REASON_UNSPECIFIED = 0; REASON_USER = 1; }
              string id = 1;
              google.protobuf.Timestamp occurred_at = 2;
              map<string, int64> quantities_by_stock_keeping_unit = 3;
              map<string, LineItemOfTheOrderThatWasPlaced> items = 4;
              repeated LineItemOfTheOrderThatWasPlaced lines = 5;
              optional bytes payload = 6;
              google.protobuf.StringValue note = 7;
              Reason reason = 8 [deprecated = true];
              OrderPlacedWithAVeryLongMessageNameIndeed previous = 9;
              oneof origin { string web = 10; string api = 11; LineItemOfTheOrderThatWasPlaced line = 12; }
              int32 type = 13;
              repeated double packed_values = 14;
            }
            enum Status { STATUS_UNSPECIFIED = 0; STATUS_OPEN = 1; STATUS_NEGATIVE = -1; }
            "#,
        );
        assert!(kept, "every line here is of a shape kept as written");
    }

    #[test]
    fn shapes_it_does_not_know_go_through_prettyplease_whole() {
        for source in [
            // An empty message prints as `{}`.
            r#"syntax = "proto3"; package p.v1; message Empty {}"#,
            // A comment of slashes makes a plain comment, which prettyplease drops.
            "syntax = \"proto3\"; package p.v1;\n/// three slashes\nmessage A { string a = 1; }",
            // Trailing spaces in a comment are trimmed.
            "syntax = \"proto3\"; package p.v1;\n// spaces after   \nmessage A { string a = 1; }",
            // Escapes in a default value.
            r#"syntax = "proto2"; package p.v1; message A { optional string a = 1 [default = "q\"uote"]; }"#,
            // A match arm too long for the margin.
            r#"syntax = "proto3"; package p.v1; enum E { E_A = 0; E_A_VERY_LONG_ENUM_VALUE_NAME_THAT_GOES_ON_AND_ON = 1; }"#,
            // Deprecated enum values are allowed in the name functions.
            r#"syntax = "proto3"; package p.v1; enum E { E_A = 0; E_B = 1 [deprecated = true]; }"#,
        ] {
            same_as_prettyplease(source);
        }
    }
}
