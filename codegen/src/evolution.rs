//! Checking schemas against what their event majors looked like before: the lock file beside
//! them, or the same folder at a git revision.

use std::path::Path;

use prost_reflect::DescriptorPool;

use crate::compat::{Finding, Place, compare};
use crate::diagnostic::{Diagnostic, Diagnostics, Location, Severity};
use crate::error::Error;
use crate::load::Loaded;
use crate::locate;
use crate::lock::{LOCK_FILE, Lock, lock};
use crate::mapping::Event;
use crate::revision;
use crate::service::Service;
use crate::sources::Sources;

/// How a breaking change inside a major is reported; see
/// [`Builder::breaking`](crate::Builder::breaking).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Breaking {
    /// As an error: checking fails, and so does generating code (the default).
    #[default]
    Fail,
    /// As a warning: code is still generated, and `lock` records the change.
    Warn,
}

/// What the schemas are compared with.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) enum Baseline {
    /// The lock file in the schema folder, when there is one.
    #[default]
    LockFile,
    /// The schema folder as it was at a git revision.
    Revision(String),
}

/// The builder's settings for comparing schemas with their past.
#[derive(Clone, Debug, Default)]
pub(crate) struct Evolution {
    pub(crate) baseline: Baseline,
    pub(crate) breaking: Breaking,
}

/// The events and services of a schema folder, with what the analysis found.
pub(crate) struct Analysis {
    pub(crate) loaded: Loaded,
    pub(crate) events: Vec<Event>,
    pub(crate) services: Vec<Service>,
    pub(crate) diagnostics: Diagnostics,
}

/// Compares the events and services of `dir` (as `analysis` found them) with the baseline,
/// reporting each breaking change; `analyze` reads the schemas of an older revision the way
/// `dir` was read.
///
/// Schemas with errors are not compared: their events are incomplete, and every missing one
/// would look deleted.
pub(crate) fn guard(
    evolution: &Evolution,
    dir: &Path,
    analysis: &mut Analysis,
    analyze: impl Fn(&Path) -> Result<Analysis, Error>,
) -> Result<(), Error> {
    let Analysis {
        loaded,
        events,
        services,
        diagnostics,
    } = analysis;
    if diagnostics.has_errors() {
        return Ok(());
    }
    let severity = match evolution.breaking {
        Breaking::Fail => Severity::Error,
        Breaking::Warn => Severity::Warning,
    };
    let old = match &evolution.baseline {
        Baseline::LockFile => match read_lock(dir, severity, diagnostics) {
            Some(lock) => lock,
            None => return Ok(()),
        },
        Baseline::Revision(rev) => match revision::checkout(dir, rev)? {
            Some(tree) => {
                let then = analyze(tree.path())?;
                lock(&then.events, &then.services)
            }
            // No schemas there yet: everything is new.
            None => return Ok(()),
        },
    };
    let sources = loaded.sources.borrow();
    let now = lock(events, services);
    for finding in compare(&old, &now) {
        let location = locate_place(&loaded.pool, &sources, &now, &finding.place);
        let Finding {
            rule,
            message,
            help,
            ..
        } = finding;
        let message = format!("{message} [{}]", rule.id());
        let diagnostic = match severity {
            Severity::Error => Diagnostic::error(message, location),
            Severity::Warning => Diagnostic::warning(message, location),
        };
        diagnostics.push(diagnostic.with_help(help));
    }
    Ok(())
}

/// The lock file of `dir`; `None` when there is none, or when it cannot be read (reported).
fn read_lock(dir: &Path, severity: Severity, diagnostics: &mut Diagnostics) -> Option<Lock> {
    let path = dir.join(LOCK_FILE);
    let report = |message: String, location: Option<Location>| {
        let d = match severity {
            Severity::Error => Diagnostic::error(message, location),
            Severity::Warning => Diagnostic::warning(message, location),
        };
        d.with_help(format!(
            "`{LOCK_FILE}` is written by `tidings lock`: restore it from version control, or write it again with `tidings lock --force`"
        ))
    };
    let text = match std::fs::read_to_string(&path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return None,
        Err(e) => {
            diagnostics.push(report(
                format!("cannot read `{}`: {e}", path.display()),
                None,
            ));
            return None;
        }
    };
    match Lock::parse(&text) {
        Ok(lock) => Some(lock),
        Err(e) => {
            let location = e.position().map(|(line, column)| {
                let text = text.lines().nth(line.saturating_sub(1)).unwrap_or("");
                Location::new(path.display().to_string(), line, column, 1, text.to_owned())
            });
            diagnostics.push(report(
                format!("`{}` is not a lock file: {e}", path.display()),
                location,
            ));
            None
        }
    }
}

/// Where `place` is in the schemas now.
fn locate_place(
    pool: &DescriptorPool,
    sources: &Sources,
    now: &Lock,
    place: &Place,
) -> Option<Location> {
    let message_at = |name: &str, suffix: &[i32]| {
        let message = pool.get_message_by_name(name)?;
        let path = [message.path(), suffix].concat();
        locate::declaration(sources, message.parent_file_descriptor_proto(), &path)
    };
    let field_at = |name: &str, number: u32, suffix: &[i32]| {
        let field = pool.get_message_by_name(name)?.get_field(number)?;
        let path = [field.path(), suffix].concat();
        locate::declaration(sources, field.parent_file().file_descriptor_proto(), &path)
    };
    match place {
        Place::Topic(name) => {
            let message = pool.get_message_by_name(name)?;
            let topic = &now.events.get(name)?.topic;
            let options = [message.path(), &[7]].concat();
            let proto = message.parent_file_descriptor_proto();
            locate::literal(sources, proto, &options, topic, None)
                .or_else(|| message_at(name, &[1]))
        }
        Place::File(name) => {
            let file = pool.get_file_by_name(name)?;
            locate::declaration(sources, file.file_descriptor_proto(), &[2])
        }
        Place::Message(name) => message_at(name, &[1]),
        Place::FieldName(name, number) => field_at(name, *number, &[1]),
        Place::Field(name, number) => field_at(name, *number, &[]),
        Place::Enum(name) => {
            let e = pool.get_enum_by_name(name)?;
            let path = [e.path(), &[1]].concat();
            locate::declaration(sources, e.parent_file().file_descriptor_proto(), &path)
        }
        Place::Service(name) => {
            let service = pool.get_service_by_name(name)?;
            let path = [service.path(), &[1]].concat();
            locate::declaration(sources, service.parent_file_descriptor_proto(), &path)
        }
        Place::RpcRequest(service, rpc)
        | Place::RpcReply(service, rpc)
        | Place::RpcTopic(service, rpc) => {
            let method = pool
                .get_service_by_name(service)?
                .methods()
                .find(|m| m.name() == rpc)?;
            let proto = method.parent_service().parent_file_descriptor_proto();
            let at = |field: i32| {
                locate::declaration(sources, proto, &[method.path(), &[field]].concat())
            };
            match place {
                Place::RpcRequest(..) => at(2),
                Place::RpcReply(..) => at(3),
                _ => {
                    let topic = &now.services.get(service)?.rpcs.get(rpc)?.topic;
                    let options = [method.path(), &[4]].concat();
                    locate::literal(sources, proto, &options, topic, None).or_else(|| at(1))
                }
            }
        }
        Place::EnumValue(name, number) => {
            let value = pool.get_enum_by_name(name)?.get_value(*number)?;
            locate::declaration(
                sources,
                value.parent_enum().parent_file().file_descriptor_proto(),
                value.path(),
            )
        }
    }
}
