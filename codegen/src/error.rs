//! Why code could not be generated.

use std::fmt;
use std::path::PathBuf;

use crate::diagnostic::Diagnostics;

/// Why code could not be generated.
#[derive(thiserror::Error)]
pub enum Error {
    /// The schemas have errors; each diagnostic says where and what to change.
    #[error("{0}")]
    Schema(Diagnostics),
    /// The schema folder holds no `.proto` file.
    #[error("no `.proto` file under `{}`: point the generator at the folder that holds the schemas", dir.display())]
    NoSchemas {
        /// The folder searched.
        dir: PathBuf,
    },
    /// A folder could not be listed.
    #[error("cannot list `{}`: {source}; check that the schema folder exists and is readable", path.display())]
    ReadDir {
        /// The folder.
        path: PathBuf,
        /// What the system said.
        source: std::io::Error,
    },
    /// A schema path is not valid UTF-8, so it cannot be an import name.
    #[error("`{}` is not valid UTF-8; rename it, import names are UTF-8", path.display())]
    NonUtf8Path {
        /// The path.
        path: PathBuf,
    },
    /// The option named with `topic_option` is not defined by any schema read.
    #[error(
        "option `{name}` is not defined by the schemas or their imports; give the full name of a string extension of `google.protobuf.MessageOptions` (or of one field of a message-typed one), as in `acme.events.v1.topic`"
    )]
    UnknownTopicOption {
        /// The name given.
        name: String,
    },
    /// Neither `out_dir` nor the `OUT_DIR` variable that Cargo gives build scripts is set.
    #[error(
        "no output folder: `compile` runs in a build script, where Cargo sets `OUT_DIR`; elsewhere call `out_dir` first"
    )]
    NoOutDir,
    /// prost-build refused the descriptors.
    #[error("generating the message types failed: {0}")]
    Generate(String),
    /// The schemas at a git revision could not be read.
    #[error(
        "cannot read the schemas at git revision `{rev}`: {reason}; give a commit, branch or tag of the git repository that holds the schema folder"
    )]
    Revision {
        /// The revision asked for.
        rev: String,
        /// What went wrong.
        reason: String,
    },
    /// A descriptor set could not be read.
    #[error(
        "not a protobuf descriptor set: {reason}; give the output of `protoc --include_imports --descriptor_set_out` or `buf build -o`"
    )]
    Descriptors {
        /// What was wrong with it.
        reason: String,
    },
    /// A generated file is there but could not be read, to compare it with what the schemas
    /// generate.
    #[error("cannot read `{}`: {source}; check that it is readable", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// What the system said.
        source: std::io::Error,
    },
    /// A generated file could not be written.
    #[error("cannot write `{}`: {source}", path.display())]
    Write {
        /// The file.
        path: PathBuf,
        /// What the system said.
        source: std::io::Error,
    },
}

// A build script's `main` returning this error prints it with `Debug`: show the diagnostics as
// written for a person, not as a struct dump.
impl fmt::Debug for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}
