//! What can go wrong while reading a configuration, and how it is reported.

use std::fmt;
use std::path::PathBuf;

/// One thing wrong with a configuration: the dotted key and what is wrong with it.
///
/// Displayed as `key: message`, e.g.
/// `storage.contact_points: must not be empty when storage.backend = "scylla"`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// The dotted key, e.g. `heartbeat.min_s` or `cluster.seeds[1]`.
    pub key: String,
    /// What is wrong, in a sentence an operator can act on.
    pub message: String,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.key, self.message)
    }
}

/// Why a configuration could not be read or is not acceptable.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("cannot read config file {}: {source}", path.display())]
    Read {
        /// The file that was asked for.
        path: PathBuf,
        /// The operating system's reason.
        source: std::io::Error,
    },
    /// The text is not TOML, or does not fit the schema (an unknown key, a value of
    /// the wrong type, an unknown enum value). The message comes from the TOML
    /// parser and names the line, the column and the key.
    #[error("{}", parse_message(path, message))]
    Parse {
        /// The file, when the text came from one.
        path: Option<PathBuf>,
        /// The parser's explanation, with a hint of ours when we have one.
        message: String,
    },
    /// The configuration parsed but breaks one or more rules. Every problem found
    /// is listed, not only the first.
    #[error("{}", invalid_message(problems))]
    Invalid {
        /// Every problem, in the order of the sections of the file.
        problems: Vec<Problem>,
    },
}

impl ConfigError {
    /// The validation problems, if this is [`ConfigError::Invalid`]; empty otherwise.
    pub fn problems(&self) -> &[Problem] {
        match self {
            ConfigError::Invalid { problems } => problems,
            _ => &[],
        }
    }
}

fn parse_message(path: &Option<PathBuf>, message: &str) -> String {
    let message = message.trim_end();
    match path {
        Some(path) => format!("invalid config file {}: {message}", path.display()),
        None => format!("invalid config: {message}"),
    }
}

fn invalid_message(problems: &[Problem]) -> String {
    let mut out = match problems.len() {
        1 => String::from("invalid configuration (1 problem):"),
        n => format!("invalid configuration ({n} problems):"),
    };
    for problem in problems {
        out.push_str("\n  ");
        out.push_str(&problem.to_string());
    }
    out
}

/// Collects problems while a configuration is checked.
#[derive(Debug, Default)]
pub(crate) struct Problems(Vec<Problem>);

impl Problems {
    /// Records that `key` is wrong because of `message`.
    pub(crate) fn push(&mut self, key: impl Into<String>, message: impl Into<String>) {
        self.0.push(Problem {
            key: key.into(),
            message: message.into(),
        });
    }

    /// The problems recorded so far, as an error.
    pub(crate) fn into_error(self) -> ConfigError {
        ConfigError::Invalid { problems: self.0 }
    }

    /// `Ok` when nothing was recorded, otherwise every problem.
    pub(crate) fn into_result(self) -> Result<(), ConfigError> {
        if self.0.is_empty() {
            Ok(())
        } else {
            Err(ConfigError::Invalid { problems: self.0 })
        }
    }
}
