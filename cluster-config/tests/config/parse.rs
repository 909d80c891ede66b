use chorus_config::{Config, ConfigError, Consistency, LogFormat, ModerationMode, StorageBackend};

fn parse_error(text: &str) -> String {
    match Config::from_toml_str(text) {
        Err(err @ ConfigError::Parse { .. }) => err.to_string(),
        Err(other) => panic!("expected a parse error, got {other}"),
        Ok(config) => panic!("expected a parse error, got {config:?}"),
    }
}

#[test]
fn unknown_key_is_rejected_by_name_and_line() {
    let message = parse_error("[listen]\ntcp = \"127.0.0.1:1\"\ntpc = \"127.0.0.1:2\"\n");
    assert!(message.contains("unknown field `tpc`"), "{message}");
    assert!(message.contains("line 3"), "{message}");
}

#[test]
fn unknown_section_is_rejected_by_name() {
    let message = parse_error("[listn]\ntcp = \"127.0.0.1:1\"\n");
    assert!(message.contains("unknown field `listn`"), "{message}");
}

#[test]
fn a_node_section_points_to_cluster_node_id() {
    let message = parse_error("[node]\nid = \"n1\"\n");
    assert!(message.contains("unknown field `node`"), "{message}");
    assert!(
        message.contains("node_id") && message.contains("[cluster]"),
        "{message}"
    );
}

#[test]
fn unknown_enum_value_lists_the_allowed_ones() {
    let message = parse_error("[auth]\nmode = \"none\"\n");
    assert!(
        message.contains("none") && message.contains("dev") && message.contains("jwt"),
        "{message}"
    );
    assert!(message.contains("line 2"), "{message}");
}

#[test]
fn wrong_type_names_the_line() {
    let message = parse_error("[heartbeat]\nmin_s = \"thirty\"\n");
    assert!(message.contains("line 2"), "{message}");
}

#[test]
fn broken_toml_names_the_line() {
    let message = parse_error("[cluster]\nnode_id = \"a\"\nseeds = [\n");
    assert!(message.contains("line"), "{message}");
}

#[test]
fn load_reports_the_file() {
    let path =
        std::env::temp_dir().join(format!("chorus-config-missing-{}.toml", std::process::id()));
    let err = Config::load(&path).expect_err("missing file");
    assert!(matches!(err, ConfigError::Read { .. }), "{err:?}");
    assert!(
        err.to_string().contains(&path.display().to_string()),
        "{err}"
    );
}

#[test]
fn typed_values_parse() {
    let config = Config::from_toml_str(
        r#"
        [storage]
        backend = "scylla"
        consistency = "quorum"
        contact_points = ["db1:9042", "10.0.0.2:9042"]
        [moderation]
        mode = "reject"
        words = "words.txt"
        [log]
        format = "json"
        [admin]
        token = "operator-token"
        [auth]
        mode = "jwt"
        secret = "0123456789abcdef"
        "#,
    )
    .expect("parses");
    assert_eq!(config.storage.backend, StorageBackend::Scylla);
    assert_eq!(config.storage.consistency, Consistency::Quorum);
    assert_eq!(config.storage.contact_points, ["db1:9042", "10.0.0.2:9042"]);
    assert_eq!(config.moderation.mode, ModerationMode::Reject);
    assert_eq!(config.log.format, LogFormat::Json);
    assert!(config.admin.enabled());
    assert_eq!(
        config.auth.secret.as_ref().map(|s| s.expose()),
        Some("0123456789abcdef")
    );
    // Untouched keys of a section keep their defaults.
    assert_eq!(config.storage.keyspace, "chorus");
    assert_eq!(config.storage.request_timeout_ms, 5000);
}

#[test]
fn live_slow_mode_parses_and_defaults_to_off() {
    let config = Config::from_toml_str("[live]\nslow_mode_s = 30\n").expect("parses");
    assert_eq!(config.live.slow_mode_s, 30);
    assert_eq!(config.live.slow_mode(), std::time::Duration::from_secs(30));
    // Untouched keys of the section keep their defaults, and an absent key is off.
    assert_eq!(config.live.rate_per_user, 5);
    let default = Config::from_toml_str("[live]\nwindow_ms = 100\n").expect("parses");
    assert_eq!(default.live.slow_mode_s, 0);
    assert!(default.live.slow_mode().is_zero());
    let message = parse_error("[live]\nslow_mode_s = -1\n");
    assert!(message.contains("line 2"), "{message}");
    let message = parse_error("[live]\nslow_mode = 30\n");
    assert!(message.contains("unknown field `slow_mode`"), "{message}");
}

#[test]
fn secrets_are_redacted_in_debug() {
    let config = Config::from_toml_str(
        "[auth]\nmode = \"jwt\"\nsecret = \"super-secret-value\"\n[admin]\ntoken = \"admin-token-value\"\n",
    )
    .expect("parses");
    let debug = format!("{config:?}");
    for secret in [
        "super-secret-value",
        "admin-token-value",
        "chorus-dev-cookie",
    ] {
        assert!(!debug.contains(secret), "{secret} leaked into {debug}");
    }
}
