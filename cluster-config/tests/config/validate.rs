use chorus_config::Config;

use crate::{assert_one_problem, problems, problems_of};

const JWT: &str = "[auth]\nmode = \"jwt\"\nsecret = \"0123456789abcdef0123456789abcdef\"\n";
/// A cookie of exactly the shortest length allowed off loopback.
const COOKIE_32: &str = "cookie-of-exactly-32-bytes-00000";
const SCYLLA: &str = "[storage]\nbackend = \"scylla\"\ncontact_points = [\"127.0.0.1:9042\"]\n";

// [listen]

#[test]
fn listen_address_must_parse() {
    assert_one_problem(
        "[listen]\nws = \"localhost:7401\"\n",
        "listen.ws",
        &["localhost:7401", "IP address"],
    );
    assert_one_problem("[listen]\ngossip = \"127.0.0.1\"\n", "listen.gossip", &[]);
    assert_one_problem(
        "[listen]\ncluster = \"127.0.0.1:70000\"\n",
        "listen.cluster",
        &[],
    );
    assert_one_problem("[listen]\nadmin = \"\"\n", "listen.admin", &[]);
}

#[test]
fn listen_addrs_names_every_bad_key() {
    let config = Config::from_toml_str("[listen]\ntcp = \"x\"\nws = \"y\"\n").expect("parses");
    let err = config.listen.addrs().expect_err("bad addresses");
    let keys: Vec<&str> = err.problems().iter().map(|p| p.key.as_str()).collect();
    assert_eq!(keys, ["listen.tcp", "listen.ws"]);
}

#[test]
fn tcp_listeners_must_not_share_a_port() {
    assert_one_problem(
        "[listen]\nadmin = \"127.0.0.1:7400\"\n",
        "listen.admin",
        &["conflicts with listen.tcp"],
    );
    let text = format!("{JWT}[listen]\ntcp = \"0.0.0.0:7000\"\nws = \"127.0.0.1:7000\"\n");
    assert_one_problem(&text, "listen.ws", &["conflicts with listen.tcp"]);
}

#[test]
fn gossip_may_share_a_port_number_and_port_zero_never_conflicts() {
    assert!(problems("[listen]\ngossip = \"127.0.0.1:7404\"\n").is_empty());
    assert!(
        problems(
            "[listen]\ntcp = \"127.0.0.1:0\"\nws = \"127.0.0.1:0\"\nadmin = \"127.0.0.1:0\"\n"
        )
        .is_empty()
    );
}

#[test]
fn ws_path_must_be_a_path() {
    assert_one_problem(
        "[listen]\nws_path = \"ws\"\n",
        "listen.ws_path",
        &["start with '/'"],
    );
    assert_one_problem("[listen]\nws_path = \"/ws?x=1\"\n", "listen.ws_path", &[]);
}

// [auth]

#[test]
fn jwt_needs_a_secret() {
    assert_one_problem(
        "[auth]\nmode = \"jwt\"\n",
        "auth.secret",
        &["required", "jwt"],
    );
}

#[test]
fn jwt_secret_must_be_long_enough() {
    assert_one_problem(
        "[auth]\nmode = \"jwt\"\nsecret = \"short\"\n",
        "auth.secret",
        &["5 bytes", "at least 32"],
    );
    assert_one_problem(
        "[auth]\nmode = \"jwt\"\nsecret = \"0123456789abcdef0123456789abcde\"\n",
        "auth.secret",
        &["31 bytes", "at least 32"],
    );
    assert!(problems(JWT).is_empty());
}

#[test]
fn dev_auth_only_on_loopback() {
    assert_one_problem(
        "[listen]\ntcp = \"0.0.0.0:7400\"\n",
        "auth.mode",
        &[
            "\"dev\"",
            "loopback",
            "listen.tcp = \"0.0.0.0:7400\"",
            "jwt",
        ],
    );
    assert_one_problem(
        "[listen]\nws = \"[::]:7401\"\ntcp = \"192.168.1.2:7400\"\n",
        "auth.mode",
        &["listen.tcp = \"192.168.1.2:7400\" and listen.ws = \"[::]:7401\""],
    );
    assert!(problems("[listen]\ntcp = \"127.0.0.2:7400\"\nws = \"[::1]:7401\"\n").is_empty());
    // The admin and cluster listeners are not client listeners.
    assert!(problems("[listen]\nadmin = \"0.0.0.0:7402\"\n").is_empty());
    // jwt may listen anywhere.
    assert!(
        problems(&format!(
            "{JWT}[listen]\ntcp = \"0.0.0.0:7400\"\nws = \"0.0.0.0:7401\"\n"
        ))
        .is_empty()
    );
}

// [storage]

#[test]
fn scylla_needs_contact_points() {
    assert_one_problem(
        "[storage]\nbackend = \"scylla\"\n",
        "storage.contact_points",
        &["must not be empty when storage.backend = \"scylla\""],
    );
    assert!(problems(SCYLLA).is_empty());
}

#[test]
fn contact_points_must_be_host_port() {
    assert_one_problem(
        "[storage]\nbackend = \"scylla\"\ncontact_points = [\"db1:9042\", \"db2\"]\n",
        "storage.contact_points[1]",
        &["\"db2\"", "host:port"],
    );
    assert_one_problem(
        "[storage]\nbackend = \"scylla\"\ncontact_points = [\"::1:9042\"]\n",
        "storage.contact_points[0]",
        &["brackets"],
    );
}

#[test]
fn keyspace_must_be_a_cql_identifier() {
    assert_one_problem(
        "[storage]\nkeyspace = \"my-keyspace\"\n",
        "storage.keyspace",
        &["CQL identifier"],
    );
    assert_one_problem(
        "[storage]\nkeyspace = \"Chorus\"\n",
        "storage.keyspace",
        &["lower-case"],
    );
    assert_one_problem(
        "[storage]\nkeyspace = \"system\"\n",
        "storage.keyspace",
        &["database itself"],
    );
}

#[test]
fn storage_numbers_must_be_positive() {
    assert_one_problem(
        "[storage]\nreplication_factor = 0\n",
        "storage.replication_factor",
        &["at least 1"],
    );
    assert_one_problem(
        "[storage]\nrequest_timeout_ms = 0\n",
        "storage.request_timeout_ms",
        &["at least 1"],
    );
}

#[test]
fn embedded_needs_a_path() {
    assert_one_problem("[storage]\npath = \"\"\n", "storage.path", &["embedded"]);
}

// [cluster]

#[test]
fn node_id_must_be_an_id() {
    assert_one_problem(
        "[cluster]\nnode_id = \"node 1\"\n",
        "cluster.node_id",
        &["[A-Za-z0-9_.-]"],
    );
    assert_one_problem("[cluster]\nnode_id = \"\"\n", "cluster.node_id", &["empty"]);
    let long = "n".repeat(65);
    assert_one_problem(
        &format!("[cluster]\nnode_id = \"{long}\"\n"),
        "cluster.node_id",
        &["64 bytes"],
    );
}

#[test]
fn seeds_must_be_host_port() {
    let text = format!(
        "{SCYLLA}[cluster]\ncookie = \"{COOKIE_32}\"\nseeds = [\"10.0.0.1:7403\", \"node-b:0\"]\n"
    );
    assert_one_problem(&text, "cluster.seeds[1]", &["port 0"]);
}

#[test]
fn embedded_store_cannot_have_seeds() {
    assert_one_problem(
        "[cluster]\nseeds = [\"127.0.0.1:8403\"]\n",
        "cluster.seeds",
        &[
            "storage.backend = \"embedded\"",
            "a multi-node cluster needs the shared scylla backend",
        ],
    );
    assert!(
        problems(&format!(
            "{SCYLLA}[cluster]\nseeds = [\"127.0.0.1:8403\"]\n"
        ))
        .is_empty()
    );
}

#[test]
fn cookie_rules() {
    assert_eq!(COOKIE_32.len(), chorus_config::MIN_COOKIE_LEN);
    assert_one_problem("[cluster]\ncookie = \"\"\n", "cluster.cookie", &["empty"]);
    assert_one_problem(
        "[listen]\ncluster = \"10.0.0.5:7404\"\n",
        "cluster.cookie",
        &[
            "development default",
            "listen.cluster = \"10.0.0.5:7404\"",
            "32 bytes",
        ],
    );
    assert!(
        problems(&format!(
            "[listen]\ncluster = \"10.0.0.5:7404\"\n[cluster]\ncookie = \"{COOKIE_32}\"\n"
        ))
        .is_empty()
    );
}

#[test]
fn a_short_cookie_is_refused_unless_every_cluster_address_is_loopback() {
    let short = "s3cret-cluster-of-31-bytes-00000";
    let short = &short[..31];
    // All loopback: a short cookie, and the default, are fine.
    let loopback = format!(
        "{SCYLLA}[listen]\ngossip = \"127.0.0.2:7403\"\ncluster = \"[::1]:7404\"\n\
         [cluster]\ncookie = \"{short}\"\nadvertise_host = \"localhost\"\n\
         seeds = [\"127.0.0.3:7403\", \"localhost:7403\", \"[::1]:7403\"]\n"
    );
    assert!(problems(&loopback).is_empty(), "{:?}", problems(&loopback));
    assert!(
        problems(&format!(
            "{SCYLLA}[cluster]\nseeds = [\"127.0.0.3:7403\"]\n"
        ))
        .is_empty()
    );

    // Any one address beyond loopback needs 32 bytes.
    for (extra, named) in [
        (
            "[listen]\ngossip = \"10.0.0.5:7403\"\n",
            "listen.gossip = \"10.0.0.5:7403\"",
        ),
        (
            "[listen]\ncluster = \"0.0.0.0:7404\"\n[cluster]\nadvertise_host = \"127.0.0.1\"\n",
            "listen.cluster = \"0.0.0.0:7404\"",
        ),
        (
            "[cluster]\nadvertise_host = \"chat-1.example.com\"\n",
            "cluster.advertise_host = \"chat-1.example.com\"",
        ),
        (
            "[cluster]\nseeds = [\"127.0.0.3:7403\", \"node-b:7403\"]\n",
            "cluster.seeds[1] = \"node-b:7403\"",
        ),
        (
            "[cluster]\nseeds = [\"[2001:db8::1]:7403\"]\n",
            "cluster.seeds[0] = \"[2001:db8::1]:7403\"",
        ),
    ] {
        let text = format!("{SCYLLA}{extra}");
        let text = text.replacen(
            "[cluster]\n",
            &format!("[cluster]\ncookie = \"{short}\"\n"),
            1,
        );
        let text = if text.contains("cookie =") {
            text
        } else {
            format!("{text}[cluster]\ncookie = \"{short}\"\n")
        };
        assert_one_problem(
            &text,
            "cluster.cookie",
            &["31 bytes", "at least 32 bytes", named, "loopback"],
        );
        let long = text.replace(short, COOKIE_32);
        assert!(problems(&long).is_empty(), "{:?}", problems(&long));
    }
}

#[test]
fn shards_must_be_positive() {
    assert_one_problem("[cluster]\nshards = 0\n", "cluster.shards", &["at least 1"]);
}

#[test]
fn advertise_host_rules() {
    assert_one_problem(
        "[cluster]\nadvertise_host = \"bad host\"\n",
        "cluster.advertise_host",
        &["bad host"],
    );
    let text = format!(
        "{SCYLLA}[listen]\ngossip = \"0.0.0.0:7403\"\n[cluster]\ncookie = \"{COOKIE_32}\"\n"
    );
    assert_one_problem(
        &text,
        "cluster.advertise_host",
        &["listen.gossip", "0.0.0.0:7403"],
    );
    // A lone embedded node need not advertise anything.
    assert!(
        problems(&format!(
            "[listen]\ngossip = \"0.0.0.0:7403\"\n[cluster]\ncookie = \"{COOKIE_32}\"\n"
        ))
        .is_empty()
    );

    let config = Config::from_toml_str(&format!("{text}advertise_host = \"chat-1.example.com\"\n"))
        .expect("parses");
    assert!(problems_of(&config).is_empty());
    let gossip = config.listen.addrs().expect("addresses").gossip;
    assert_eq!(config.cluster.advertised(gossip), "chat-1.example.com:7403");
    assert_eq!(Config::default().cluster.advertised(gossip), "0.0.0.0:7403");
}

// [moderation]

#[test]
fn moderation_paths_must_not_be_empty() {
    assert_one_problem(
        "[moderation]\nwords = \"\"\n",
        "moderation.words",
        &["empty"],
    );
    assert_one_problem(
        "[moderation]\nallow = \"\"\n",
        "moderation.allow",
        &["empty"],
    );
    assert!(problems("[moderation]\nwords = \"words.txt\"\nallow = \"allow.txt\"\n").is_empty());
}

// [heartbeat]

#[test]
fn heartbeat_min_at_least_five() {
    assert_one_problem(
        "[heartbeat]\nmin_s = 4\n",
        "heartbeat.min_s",
        &["is 4", "at least 5"],
    );
}

#[test]
fn heartbeat_min_at_most_max() {
    assert_one_problem(
        "[heartbeat]\nmin_s = 60\nmax_s = 30\n",
        "heartbeat.max_s",
        &["is 30", "heartbeat.min_s (60)"],
    );
    assert!(problems("[heartbeat]\nmin_s = 45\nmax_s = 45\n").is_empty());
}

// [live]

#[test]
fn live_values_must_be_positive() {
    for key in [
        "window_ms",
        "max_batch",
        "rate_per_user",
        "rate_window_s",
        "viewer_queue",
    ] {
        assert_one_problem(
            &format!("[live]\n{key} = 0\n"),
            &format!("live.{key}"),
            &["at least 1"],
        );
    }
    assert!(
        problems("[live]\nrecent = 0\n").is_empty(),
        "no recent items is allowed"
    );
}

#[test]
fn live_slow_mode_is_at_most_a_day() {
    assert!(problems("[live]\nslow_mode_s = 0\n").is_empty(), "off");
    assert!(problems("[live]\nslow_mode_s = 86400\n").is_empty());
    assert_one_problem(
        "[live]\nslow_mode_s = 86401\n",
        "live.slow_mode_s",
        &["is 86401", "86400", "0 turns slow mode off"],
    );
}

// [scaling]

#[test]
fn scaling_defaults_are_valid_and_each_rule_names_its_key() {
    assert!(problems("[scaling]\n").is_empty());
    assert!(
        problems("[scaling]\nactuator = [\"kubectl\", \"scale\", \"--replicas={replicas}\"]\n")
            .is_empty()
    );
    for (toml, key, words) in [
        (
            "sample_s = 0",
            "scaling.sample_s",
            &["is 0", "1 to 3600"][..],
        ),
        (
            "metric = \"qps\"",
            "scaling.metric",
            &["\"qps\"", "connections"][..],
        ),
        (
            "per_node_capacity = 0",
            "scaling.per_node_capacity",
            &["at least 1"][..],
        ),
        (
            "target_percent = 101",
            "scaling.target_percent",
            &["1 to 100"][..],
        ),
        ("min_nodes = 0", "scaling.min_nodes", &["at least 1"][..]),
        (
            "min_nodes = 5\nmax_nodes = 4",
            "scaling.max_nodes",
            &["scaling.min_nodes"][..],
        ),
        ("window = 10", "scaling.window", &["24 to 4096"][..]),
        (
            "history_samples = 100",
            "scaling.history_samples",
            &["scaling.window"][..],
        ),
        (
            "store_every_s = 0",
            "scaling.store_every_s",
            &["is 0", "1 to 3600"][..],
        ),
        (
            "store_every_s = 3601",
            "scaling.store_every_s",
            &["is 3601", "1 to 3600"][..],
        ),
        (
            "forecast_every_s = 0",
            "scaling.forecast_every_s",
            &["at least 1"][..],
        ),
        (
            "actuator = [\"\"]",
            "scaling.actuator",
            &["must not be empty"][..],
        ),
        (
            "actuator_timeout_s = 0",
            "scaling.actuator_timeout_s",
            &["at least 1"][..],
        ),
    ] {
        assert_one_problem(&format!("[scaling]\n{toml}\n"), key, words);
    }
}

// [limits]

#[test]
fn max_frame_bounds() {
    assert_one_problem(
        "[limits]\nmax_frame = 16777217\noutbound_bytes = 40000000\n",
        "limits.max_frame",
        &["16 MiB"],
    );
    assert!(problems("[limits]\nmax_frame = 16777216\noutbound_bytes = 40000000\n").is_empty());
    assert_one_problem(
        "[limits]\nmax_frame = 1000\nmax_body = 100\n",
        "limits.max_frame",
        &["at least 1024"],
    );
}

#[test]
fn max_body_below_max_frame() {
    assert_one_problem(
        "[limits]\nmax_frame = 4096\nmax_body = 4096\n",
        "limits.max_body",
        &["less than limits.max_frame (4096)"],
    );
    assert_one_problem(
        "[limits]\nmax_body = 0\n",
        "limits.max_body",
        &["at least 1"],
    );
}

#[test]
fn max_frame_holds_the_worst_body_and_the_largest_group() {
    // 6 × 8192 + 4096 = 53248.
    assert_one_problem(
        "[limits]\nmax_frame = 53247\nmax_body = 8192\n",
        "limits.max_frame",
        &["at least 53248", "6 × max_body"],
    );
    assert!(
        problems("[limits]\nmax_frame = 53248\nmax_body = 8192\nmax_group_members = 10\n")
            .is_empty()
    );
    // 900 members need 900 × 67 + 1536 + 4096 = 65932 bytes.
    assert_one_problem(
        "[limits]\nmax_group_members = 900\n",
        "limits.max_group_members",
        &["65932", "at most 894"],
    );
    assert!(problems("[limits]\nmax_group_members = 894\n").is_empty());
}

#[test]
fn limits_values_must_be_positive() {
    for key in [
        "hello_timeout_ms",
        "outbound_queue",
        "history_max",
        "max_group_members",
        "list_max",
        "max_groups_per_user",
    ] {
        assert_one_problem(
            &format!("[limits]\n{key} = 0\n"),
            &format!("limits.{key}"),
            &["at least 1"],
        );
    }
}

// [entities]

#[test]
fn entity_caps_must_be_positive() {
    for key in [
        "max_users",
        "max_conversations",
        "max_live_rooms",
        "group_cache_members",
    ] {
        assert_one_problem(
            &format!("[entities]\n{key} = 0\n"),
            &format!("entities.{key}"),
            &["at least 1"],
        );
    }
}

// [admin], [log]

#[test]
fn admin_token_rules() {
    assert_one_problem("[admin]\ntoken = \"\"\n", "admin.token", &["empty"]);
    assert_one_problem(
        "[admin]\ntoken = \"has space\"\n",
        "admin.token",
        &["printable"],
    );
    assert!(!Config::default().admin.enabled());
}

#[test]
fn admin_token_ttl_cap_is_positive_and_a_day_by_default() {
    assert_eq!(
        Config::default().admin.max_token_ttl_s,
        chorus_config::DEFAULT_MAX_TOKEN_TTL_S
    );
    assert_eq!(chorus_config::DEFAULT_MAX_TOKEN_TTL_S, 86_400);
    assert_one_problem(
        "[admin]\nmax_token_ttl_s = 0\n",
        "admin.max_token_ttl_s",
        &["at least 1"],
    );
    assert!(problems("[admin]\nmax_token_ttl_s = 600\n").is_empty());
}

#[test]
fn log_level_must_not_be_empty() {
    assert_one_problem("[log]\nlevel = \" \"\n", "log.level", &["empty"]);
}

// All at once

#[test]
fn every_problem_is_reported_at_once() {
    let text = r#"
        [listen]
        tcp = "0.0.0.0:7400"
        ws = "nonsense"
        [storage]
        backend = "scylla"
        keyspace = "bad-name"
        [heartbeat]
        min_s = 1
        [limits]
        max_body = 70000
    "#;
    let found = problems(text);
    let keys: Vec<&str> = found
        .iter()
        .map(|line| line.split(':').next().unwrap_or(""))
        .collect();
    assert_eq!(
        keys,
        [
            "listen.ws",
            "storage.contact_points",
            "storage.keyspace",
            "heartbeat.min_s",
            "limits.max_body",
            "auth.mode",
        ],
        "{found:#?}"
    );
    let err = Config::from_toml_str(text)
        .expect("parses")
        .validate()
        .expect_err("invalid");
    let message = err.to_string();
    assert!(
        message.starts_with("invalid configuration (6 problems):"),
        "{message}"
    );
    for line in &found {
        assert!(message.contains(line.as_str()), "{message} lacks {line}");
    }
}
