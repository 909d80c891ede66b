//! Tests of the configuration through its public API: the shipped example,
//! parsing, every validation rule, overrides and the heartbeat rule.

mod example;
mod heartbeat;
mod listeners;
mod overrides;
mod parse;
mod validate;

use chorus_config::{Config, ConfigError};

/// Parses `text`, which must be well-formed, and returns its validation problems as
/// `key: message` lines (empty when valid).
fn problems(text: &str) -> Vec<String> {
    let config = match Config::from_toml_str(text) {
        Ok(config) => config,
        Err(err) => panic!("test TOML does not parse: {err}"),
    };
    problems_of(&config)
}

/// The validation problems of `config` as `key: message` lines.
fn problems_of(config: &Config) -> Vec<String> {
    match config.validate() {
        Ok(()) => Vec::new(),
        Err(err @ ConfigError::Invalid { .. }) => {
            err.problems().iter().map(ToString::to_string).collect()
        }
        Err(other) => panic!("validate returned a non-validation error: {other}"),
    }
}

/// Asserts that `text` has exactly one problem, about `key`, whose message contains
/// every fragment.
#[track_caller]
fn assert_one_problem(text: &str, key: &str, fragments: &[&str]) {
    let found = problems(text);
    assert_eq!(
        found.len(),
        1,
        "expected one problem about {key}, got {found:#?}"
    );
    let line = &found[0];
    assert!(
        line.starts_with(&format!("{key}: ")),
        "expected a problem about {key}, got {line:?}"
    );
    for fragment in fragments {
        assert!(
            line.contains(fragment),
            "{line:?} does not mention {fragment:?}"
        );
    }
}
