use std::path::{Path, PathBuf};

use chorus_config::{Config, ConfigError, Overrides};

fn addr(text: &str) -> std::net::SocketAddr {
    text.parse().expect("test address")
}

#[test]
fn flags_replace_file_values() {
    let mut config = Config::from_toml_str(
        "[cluster]\nnode_id = \"from-file\"\n[listen]\ntcp = \"127.0.0.1:9000\"\nws = \"127.0.0.1:9001\"\n",
    )
    .expect("parses");
    let overrides = Overrides {
        data_dir: Some(PathBuf::from("/var/lib/chorus")),
        tcp: Some(addr("127.0.0.1:0")),
        admin: Some(addr("[::1]:7502")),
        node_id: Some("from-flag".into()),
        log_level: Some("debug".into()),
        ..Overrides::default()
    };
    config.apply(&overrides);
    assert_eq!(config.storage.path, Path::new("/var/lib/chorus"));
    assert_eq!(config.listen.tcp, "127.0.0.1:0");
    assert_eq!(
        config.listen.ws, "127.0.0.1:9001",
        "not overridden: the file's value stays"
    );
    assert_eq!(config.listen.admin, "[::1]:7502");
    assert_eq!(config.cluster.node_id, "from-flag");
    assert_eq!(config.log.level, "debug");
    config.validate().expect("still valid");
    let addrs = config.listen.addrs().expect("addresses parse");
    assert_eq!(addrs.tcp, addr("127.0.0.1:0"));
    assert_eq!(addrs.admin, addr("[::1]:7502"));
}

#[test]
fn empty_overrides_change_nothing() {
    let mut config = Config::default();
    config.apply(&Overrides::default());
    assert_eq!(config, Config::default());
    assert!(Overrides::default().keys().is_empty());
}

#[test]
fn keys_lists_what_is_overridden() {
    let overrides = Overrides {
        ws: Some(addr("127.0.0.1:1")),
        seeds: Some(vec![]),
        ..Overrides::default()
    };
    assert_eq!(overrides.keys(), ["listen.ws", "cluster.seeds"]);
}

#[test]
fn an_override_can_break_a_valid_file() {
    let mut config = Config::default();
    config.apply(&Overrides {
        tcp: Some(addr("0.0.0.0:7400")),
        ..Overrides::default()
    });
    let err = config.validate().expect_err("dev auth on a public address");
    assert_eq!(err.problems().len(), 1, "{err}");
    assert_eq!(err.problems()[0].key, "auth.mode");
}

#[test]
fn a_bad_node_id_flag_is_reported_against_the_key() {
    let err = Config::resolve(
        None,
        &Overrides {
            node_id: Some("no spaces".into()),
            ..Overrides::default()
        },
    )
    .expect_err("invalid node id");
    assert_eq!(err.problems().len(), 1, "{err}");
    assert_eq!(err.problems()[0].key, "cluster.node_id");
}

#[test]
fn resolve_loads_applies_and_validates() {
    let path = Path::new(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/examples/single-node.toml"
    ));
    let config = Config::resolve(
        Some(path),
        &Overrides {
            node_id: Some("n2".into()),
            ..Overrides::default()
        },
    )
    .expect("valid");
    assert_eq!(config.cluster.node_id, "n2");

    let missing = path.with_file_name("no-such-file.toml");
    let err = Config::resolve(Some(&missing), &Overrides::default()).expect_err("missing file");
    assert!(matches!(err, ConfigError::Read { .. }), "{err:?}");
}
