//! Where the broker verbs read their schemas: a folder, as the schema verbs do, or a compiled
//! descriptor set.

use std::path::PathBuf;

use clap::Args;
use tidings_codegen::{Builder, SchemaSet};

use crate::error::CliError;

/// The schemas the events on the broker are read and written by.
#[derive(Args)]
#[group(required = true, multiple = false, id = "schema_source")]
pub(crate) struct SchemaSource {
    /// The schema folder: every `.proto` file under it is compiled.
    #[arg(long, value_name = "DIR")]
    schemas: Option<PathBuf>,
    /// A compiled descriptor set instead (`protoc --include_imports --descriptor_set_out`,
    /// `buf build -o`).
    #[arg(long, value_name = "FILE")]
    descriptors: Option<PathBuf>,
}

/// How the schemas map to events, as for the schema verbs.
#[derive(Args)]
pub(crate) struct Mapping {
    /// Another folder to resolve imports against (repeatable).
    #[arg(short = 'I', long = "include", value_name = "DIR")]
    pub(crate) includes: Vec<PathBuf>,
    /// A custom string option to read topics from, such as `acme.events.v1.topic`.
    #[arg(long, value_name = "NAME")]
    pub(crate) topic_option: Option<String>,
}

impl Mapping {
    /// The code generator's builder, set up with these mapping options.
    pub(crate) fn builder(&self) -> Builder {
        let mut builder = tidings_codegen::configure();
        for include in &self.includes {
            builder = builder.include(include);
        }
        if let Some(name) = &self.topic_option {
            builder = builder.topic_option(name);
        }
        builder
    }
}

impl SchemaSource {
    /// Reads the schemas, refusing them when they have errors.
    pub(crate) fn load(&self, mapping: &Mapping) -> Result<SchemaSet, CliError> {
        let builder = mapping.builder();
        let set = match (&self.schemas, &self.descriptors) {
            (_, Some(file)) => {
                let bytes = std::fs::read(file).map_err(|source| CliError::Read {
                    path: file.clone(),
                    source,
                })?;
                builder.schema_set_from_descriptors(&bytes)?
            }
            (Some(dir), None) => builder.schema_set(dir)?,
            // clap requires one of the two.
            (None, None) => builder.schema_set(".")?,
        };
        if !set.warnings().is_empty() {
            eprint!("{}", set.warnings());
        }
        Ok(set)
    }
}
