//! Why a broker verb stopped, and the exit status each reason gives.

use std::path::PathBuf;

use tidings::{BrokerError, ConnectError};

/// Exit status for what was refused: schemas with errors, an unknown topic, a JSON document
/// the schema does not take, a broker that refused or could not be reached.
pub(crate) const REFUSED: u8 = 1;
/// Exit status for a usage error: bad arguments, a file that cannot be read, a malformed URL.
pub(crate) const USAGE: u8 = 2;

/// Why a broker verb stopped.
#[derive(Debug, thiserror::Error)]
pub(crate) enum CliError {
    /// The schemas could not be read, or have errors.
    #[error("{0}")]
    Schemas(tidings_codegen::Error),
    /// A file named on the command line could not be read.
    #[error("cannot read `{}`: {source}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// What the system said.
        source: std::io::Error,
    },
    /// The topic is not one of the events of the schemas.
    #[error("no event of the schemas travels on `{topic}`; `tidings list` prints those that do")]
    UnknownTopic {
        /// The topic given.
        topic: String,
    },
    /// A dead letter asked for by id is not there.
    #[error(
        "no dead letter with id {id} in {dead_letters}; `tidings dlq list` prints those there are"
    )]
    NotFound {
        /// The id asked for.
        id: String,
        /// Where it was looked for.
        dead_letters: String,
    },
    /// A JSON document does not match the event's schema.
    #[error("the data does not match {schema}: {reason}")]
    Data {
        /// The full protobuf name of the event's message.
        schema: String,
        /// What is wrong, starting with the path of the field.
        reason: String,
    },
    /// The broker could not be reached, or the URL names none.
    #[error("{0}")]
    Connect(#[from] ConnectError),
    /// The broker refused or failed an operation.
    #[error("{0}")]
    Broker(#[from] BrokerError),
    /// Standard input or output failed.
    #[error("{0}")]
    Io(#[from] std::io::Error),
}

impl CliError {
    /// The exit status this error gives.
    pub(crate) fn exit_code(&self) -> u8 {
        match self {
            CliError::Schemas(tidings_codegen::Error::Schema(_)) => REFUSED,
            CliError::Schemas(_) | CliError::Read { .. } => USAGE,
            CliError::Connect(
                ConnectError::Malformed { .. }
                | ConnectError::UnknownScheme { .. }
                | ConnectError::FeatureDisabled { .. },
            ) => USAGE,
            _ => REFUSED,
        }
    }
}

impl From<tidings_codegen::Error> for CliError {
    fn from(error: tidings_codegen::Error) -> Self {
        CliError::Schemas(error)
    }
}
