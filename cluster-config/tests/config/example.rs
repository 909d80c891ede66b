use std::path::Path;

use chorus_config::{AuthMode, Config, StorageBackend};

fn example_path() -> &'static Path {
    Path::new(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/examples/single-node.toml"
    ))
}

#[test]
fn defaults_validate() {
    let config = Config::default();
    config.validate().expect("the defaults are valid");
    assert_eq!(config.cluster.node_id, "node-1");
    assert_eq!(config.auth.mode, AuthMode::Dev);
    assert_eq!(config.storage.backend, StorageBackend::Embedded);
}

#[test]
fn an_empty_file_is_the_defaults() {
    assert_eq!(
        Config::from_toml_str("").expect("empty parses"),
        Config::default()
    );
}

#[test]
fn single_node_example_loads_validates_and_documents_the_defaults() {
    let config = Config::load(example_path()).expect("the example parses");
    config.validate().expect("the example is valid");
    assert_eq!(
        config,
        Config::default(),
        "the example says its values are the defaults"
    );
}

#[test]
fn single_node_example_sets_every_section() {
    let text = std::fs::read_to_string(example_path()).expect("example readable");
    for section in [
        "cluster",
        "listen",
        "auth",
        "storage",
        "moderation",
        "heartbeat",
        "live",
        "limits",
        "entities",
        "connections",
        "tls",
        "admin",
        "log",
    ] {
        assert!(
            text.contains(&format!("\n[{section}]\n")),
            "the example has no [{section}]"
        );
    }
}

/// Every key of the example, and every optional key it shows commented out, is
/// described in the operators' guide.
#[test]
fn configuration_guide_describes_every_key() {
    let guide_path = concat!(env!("CARGO_MANIFEST_DIR"), "/../docs/configuration.md");
    let guide = std::fs::read_to_string(guide_path).expect("docs/configuration.md readable");
    let text = std::fs::read_to_string(example_path()).expect("example readable");
    let table: toml::Table = text.parse().expect("example is TOML");
    let mut keys: Vec<String> = Vec::new();
    for (section, value) in &table {
        let section_table = value.as_table().expect("every top-level key is a section");
        keys.extend(section_table.keys().map(|key| format!("{section}.{key}")));
    }
    keys.extend(
        [
            "cluster.advertise_host",
            "auth.secret",
            "moderation.words",
            "moderation.allow",
            "admin.token",
        ]
        .map(String::from),
    );
    for key in keys {
        assert!(
            guide.contains(&format!("`{key}`")),
            "docs/configuration.md does not describe `{key}`"
        );
    }
}

/// The cluster example of the operators' guide is a valid configuration.
#[test]
fn configuration_guide_cluster_example_is_valid() {
    let guide_path = concat!(env!("CARGO_MANIFEST_DIR"), "/../docs/configuration.md");
    let guide = std::fs::read_to_string(guide_path).expect("docs/configuration.md readable");
    let blocks: Vec<&str> = guide
        .split("```toml\n")
        .skip(1)
        .filter_map(|rest| rest.split("```").next())
        .collect();
    assert!(!blocks.is_empty(), "the guide has a TOML example");
    for block in blocks {
        let config = Config::from_toml_str(block).expect("the guide's example parses");
        config.validate().expect("the guide's example is valid");
    }
}
