//! `tidings`: generate, check and list the events of a protobuf schema folder; lock what each
//! event major looks like, and describe the events as AsyncAPI or an HTML catalog. On a live
//! broker: tail topics, publish JSON by schema, list and replay dead letters.
//!
//! Exit status: 0 when clean, 1 when the schemas have errors (or generated code is stale with
//! `generate --check`) or a broker verb was refused (an unknown topic, data that does not match
//! the schema, a broker that refused or cannot be reached), 2 for a usage error (bad arguments,
//! missing folder or file, malformed broker URL).

mod by_schema;
mod connect;
mod dlq;
mod error;
mod live;
mod progress;
mod publish;
mod render;
mod schemas;
mod tail;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand, ValueEnum};
use tidings_codegen::{
    Breaking, Builder, Diagnostics, Error, EventInfo, HandlerDefault, LOCK_FILE, RpcInfo,
};

use crate::schemas::Mapping;

/// Versioned protobuf event schemas to typed Rust publishers and subscribers.
#[derive(Parser)]
#[command(name = "tidings", version)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Writes the generated Rust code for a schema folder, rewriting only changed files.
    Generate {
        #[command(flatten)]
        schemas: Schemas,
        /// The folder to write into; include its `mod.rs` in the crate.
        #[arg(long, value_name = "OUT")]
        out: PathBuf,
        /// Writes nothing; fails when OUT differs from what the schemas generate (for CI).
        #[arg(long)]
        check: bool,
        /// Leaves the message types as prost-build writes them, unformatted.
        #[arg(long)]
        no_format: bool,
        /// What each method of a generated `Handler` trait does when an implementation leaves
        /// it out.
        #[arg(long, value_enum, value_name = "DEFAULT", default_value_t = HandlerDefaults::Required)]
        handler_defaults: HandlerDefaults,
    },
    /// Lints a schema folder: versions, topics, duplicates, reserved words, empty events; and
    /// refuses breaking changes inside a major, against `tidings.lock` when the folder has one.
    Check {
        #[command(flatten)]
        schemas: Schemas,
        /// Compares with the folder at this git revision (commit, branch, tag) instead of the
        /// lock.
        #[arg(long, value_name = "REF")]
        against: Option<String>,
    },
    /// Writes `tidings.lock` into the schema folder: what each event major looks like, for
    /// `check` to refuse breaking changes inside a major. Commit it.
    Lock {
        #[command(flatten)]
        schemas: Schemas,
        /// Records breaking changes too (to retire a major no one reads any more, say).
        #[arg(long)]
        force: bool,
    },
    /// Writes an AsyncAPI 3.0 document (JSON) describing the events: channels, messages with
    /// their payload schemas and CloudEvents headers, send and receive operations.
    Asyncapi {
        #[command(flatten)]
        schemas: Schemas,
        /// The file to write; standard output by default.
        #[arg(long, value_name = "FILE")]
        out: Option<PathBuf>,
        /// The document's title.
        #[arg(long, default_value = "Events")]
        title: String,
        /// The version of the API the document describes.
        #[arg(long, value_name = "VERSION", default_value = "1.0.0")]
        api_version: String,
    },
    /// Writes a static HTML catalog of the events, `index.html`, into a folder.
    Docs {
        #[command(flatten)]
        schemas: Schemas,
        /// The folder to write `index.html` into.
        #[arg(long, value_name = "OUT")]
        out: PathBuf,
        /// The page's title.
        #[arg(long, default_value = "Event catalog")]
        title: String,
    },
    /// Prints the events of a schema folder (topic, version, schema, file), then its
    /// request-reply operations (topic, version, rpc, request, reply, file).
    List {
        #[command(flatten)]
        schemas: Schemas,
        /// How to print the catalog.
        #[arg(long, value_enum, default_value_t = Format::Table)]
        format: Format,
    },
    #[command(flatten)]
    Live(live::LiveCommand),
}

/// Where the schemas are and how they map to events.
#[derive(Args)]
struct Schemas {
    /// The schema folder: every `.proto` file under it is compiled.
    #[arg(value_name = "DIR")]
    dir: PathBuf,
    #[command(flatten)]
    mapping: Mapping,
}

impl Schemas {
    fn builder(&self) -> Builder {
        self.mapping.builder()
    }
}

/// The choices of [`HandlerDefault`], as the command line spells them; a type of the binary's
/// own, so the library's public enum does not depend on clap.
#[derive(Clone, Copy, ValueEnum)]
enum HandlerDefaults {
    /// None: every method must be written, and an event added to a package breaks the
    /// implementations of its trait until they handle it.
    Required,
    /// Acks the event and drops it.
    Ignore,
    /// Dead-letters the event at once, without retries.
    DeadLetter,
}

impl From<HandlerDefaults> for HandlerDefault {
    fn from(choice: HandlerDefaults) -> Self {
        match choice {
            HandlerDefaults::Required => HandlerDefault::Required,
            HandlerDefaults::Ignore => HandlerDefault::Ignore,
            HandlerDefaults::DeadLetter => HandlerDefault::DeadLetter,
        }
    }
}

#[derive(Clone, Copy, ValueEnum)]
enum Format {
    /// Aligned columns.
    Table,
    /// A JSON array of objects.
    Json,
}

const SCHEMA_ERRORS: u8 = 1;
const USAGE: u8 = 2;

fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli.command) {
        Ok(code) => ExitCode::from(code),
        Err(Error::Schema(diagnostics)) => {
            eprint!("{diagnostics}");
            ExitCode::from(SCHEMA_ERRORS)
        }
        Err(e @ Error::Generate(_)) => {
            eprintln!("error: {e}");
            ExitCode::from(SCHEMA_ERRORS)
        }
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::from(USAGE)
        }
    }
}

fn run(command: Command) -> Result<u8, Error> {
    match command {
        Command::Live(command) => Ok(match live::run(command) {
            Ok(()) => 0,
            Err(error) => {
                eprintln!("error: {error}");
                error.exit_code()
            }
        }),
        Command::Generate {
            schemas,
            out,
            check,
            no_format,
            handler_defaults,
        } => {
            let generated = schemas
                .builder()
                .format(!no_format)
                .handler_defaults(handler_defaults.into())
                .generate(&schemas.dir)?;
            report(generated.warnings());
            if check {
                let stale = generated.stale(&out)?;
                if stale.is_empty() {
                    println!("{} is up to date", out.display());
                    return Ok(0);
                }
                for s in &stale {
                    eprintln!("stale: {s}");
                }
                eprintln!(
                    "run `tidings generate {} --out {}` and commit the result",
                    schemas.dir.display(),
                    out.display()
                );
                return Ok(SCHEMA_ERRORS);
            }
            let written = generated.write(&out)?;
            println!(
                "{} events; {} files written, {} unchanged, {} removed in {}",
                generated.events().len(),
                written.changed.len(),
                written.unchanged.len(),
                written.removed.len(),
                out.display()
            );
            Ok(0)
        }
        Command::Check { schemas, against } => {
            let mut builder = schemas.builder();
            if let Some(rev) = against {
                builder = builder.against_revision(rev);
            }
            let result = builder.check(&schemas.dir)?;
            report(&result.diagnostics);
            if result.diagnostics.has_errors() {
                return Ok(SCHEMA_ERRORS);
            }
            println!(
                "{}: {} events{}, no errors",
                schemas.dir.display(),
                result.events.len(),
                rpc_count(result.rpcs.len())
            );
            Ok(0)
        }
        Command::Lock { schemas, force } => {
            let builder = schemas.builder().breaking(if force {
                Breaking::Warn
            } else {
                Breaking::Fail
            });
            let locked = match builder.lock(&schemas.dir) {
                Err(Error::Schema(diagnostics)) => {
                    eprint!("{diagnostics}");
                    // `--force` only helps when breaking changes are all that is wrong.
                    let only_breaking = !force
                        && schemas
                            .builder()
                            .breaking(Breaking::Warn)
                            .check(&schemas.dir)
                            .is_ok_and(|report| report.diagnostics.error_count() == 0);
                    if only_breaking {
                        eprintln!(
                            "nothing written; to record breaking changes anyway, run `tidings lock --force {}`",
                            schemas.dir.display()
                        );
                    } else {
                        eprintln!("nothing written; fix the errors above first");
                    }
                    return Ok(SCHEMA_ERRORS);
                }
                result => result?,
            };
            report(&locked.warnings);
            let changed = locked.lock.write(&schemas.dir)?;
            println!(
                "{}: {} event majors{}, {}",
                schemas.dir.join(LOCK_FILE).display(),
                locked.lock.events().count(),
                rpc_count(locked.lock.rpcs().count()),
                if changed { "written" } else { "unchanged" }
            );
            Ok(0)
        }
        Command::Asyncapi {
            schemas,
            out,
            title,
            api_version,
        } => {
            let document = schemas
                .builder()
                .asyncapi(&schemas.dir, &title, &api_version)?;
            match out {
                Some(path) => std::fs::write(&path, document)
                    .map_err(|source| Error::Write { path, source })?,
                None => print!("{document}"),
            }
            Ok(0)
        }
        Command::Docs {
            schemas,
            out,
            title,
        } => {
            let page = schemas.builder().docs(&schemas.dir, &title)?;
            let path = out.join("index.html");
            std::fs::create_dir_all(&out)
                .and_then(|()| std::fs::write(&path, page))
                .map_err(|source| Error::Write {
                    path: path.clone(),
                    source,
                })?;
            println!("wrote {}", path.display());
            Ok(0)
        }
        Command::List { schemas, format } => {
            let result = schemas.builder().check(&schemas.dir)?;
            if result.diagnostics.has_errors() {
                return Err(Error::Schema(result.diagnostics));
            }
            report(&result.diagnostics);
            match format {
                Format::Table => {
                    print!("{}", table(&result.events));
                    if !result.rpcs.is_empty() {
                        print!("\n{}", rpc_table(&result.rpcs));
                    }
                }
                Format::Json => println!("{}", json(&result.events, &result.rpcs)),
            }
            Ok(0)
        }
    }
}

/// Prints diagnostics, if any, to stderr.
fn report(diagnostics: &Diagnostics) {
    if !diagnostics.is_empty() {
        eprint!("{diagnostics}");
    }
}

/// ", and 1 rpc" after a count of events; nothing when there are no rpcs.
fn rpc_count(rpcs: usize) -> String {
    match rpcs {
        0 => String::new(),
        1 => " and 1 rpc".to_owned(),
        n => format!(" and {n} rpcs"),
    }
}

fn table(events: &[EventInfo]) -> String {
    let rows: Vec<Vec<String>> = events
        .iter()
        .map(|e| {
            vec![
                e.topic().to_owned(),
                format!("v{}", e.major()),
                e.schema().to_owned(),
                e.file().to_owned(),
            ]
        })
        .collect();
    columns(&["TOPIC", "VERSION", "SCHEMA", "FILE"], &rows)
}

fn rpc_table(rpcs: &[RpcInfo]) -> String {
    let rows: Vec<Vec<String>> = rpcs
        .iter()
        .map(|r| {
            vec![
                r.topic().to_owned(),
                format!("v{}", r.major()),
                r.name().to_owned(),
                r.request().to_owned(),
                r.reply().to_owned(),
                r.file().to_owned(),
            ]
        })
        .collect();
    columns(
        &["RPC TOPIC", "VERSION", "RPC", "REQUEST", "REPLY", "FILE"],
        &rows,
    )
}

/// `rows` under `header`, in columns two spaces apart, each as wide as its widest cell; the last
/// column unpadded.
fn columns(header: &[&str], rows: &[Vec<String>]) -> String {
    let widths: Vec<usize> = (0..header.len())
        .map(|i| {
            rows.iter()
                .map(|r| r[i].len())
                .chain([header[i].len()])
                .max()
                .unwrap_or(0)
        })
        .collect();
    let line = |cells: &mut dyn Iterator<Item = &str>| {
        let mut text = String::new();
        for (i, cell) in cells.enumerate() {
            if i + 1 < header.len() {
                text.push_str(&format!("{cell:width$}  ", width = widths[i]));
            } else {
                text.push_str(cell);
            }
        }
        text.push('\n');
        text
    };
    let mut out = line(&mut header.iter().copied());
    for row in rows {
        out.push_str(&line(&mut row.iter().map(String::as_str)));
    }
    out
}

/// The events, then the rpcs, as one JSON array; `kind` tells them apart.
fn json(events: &[EventInfo], rpcs: &[RpcInfo]) -> String {
    let events = events.iter().map(|e| {
        serde_json::json!({
            "kind": "event",
            "topic": e.topic(),
            "type": e.event_type(),
            "version": e.major(),
            "schema": e.schema(),
            "payload": e.payload(),
            "package": e.package(),
            "rust_path": e.rust_path(),
            "file": e.file(),
        })
    });
    let rpcs = rpcs.iter().map(|r| {
        serde_json::json!({
            "kind": "rpc",
            "topic": r.topic(),
            "version": r.major(),
            "rpc": r.name(),
            "service": r.service(),
            "request": r.request(),
            "reply": r.reply(),
            "package": r.package(),
            "rust_path": r.rust_path(),
            "file": r.file(),
        })
    });
    let list: Vec<serde_json::Value> = events.chain(rpcs).collect();
    serde_json::to_string_pretty(&list).unwrap_or_default()
}
