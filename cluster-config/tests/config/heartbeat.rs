use chorus_config::Config;

#[test]
fn interval_is_clamped_then_given_half_again_plus_grace() {
    let config = Config::default(); // min_s 30, max_s 600
    assert_eq!(config.idle_timeout_s(60), 60 + 30 + 5);
    assert_eq!(
        config.idle_timeout_s(45),
        45 + 23 + 5,
        "1.5 × 45 = 67.5 rounds up"
    );
    assert_eq!(
        config.idle_timeout_s(1),
        30 + 15 + 5,
        "below min_s counts as min_s"
    );
    assert_eq!(config.idle_timeout_s(0), 30 + 15 + 5);
    assert_eq!(
        config.idle_timeout_s(100_000),
        600 + 300 + 5,
        "above max_s counts as max_s"
    );
    assert_eq!(config.welcome_idle_timeout_s(), 905);
}

#[test]
fn timeout_lies_within_the_protocol_window() {
    let config = Config::from_toml_str("[heartbeat]\nmin_s = 5\nmax_s = 1000\n").expect("parses");
    for interval in 5..=1000_u32 {
        let timeout = f64::from(config.idle_timeout_s(interval));
        let interval = f64::from(interval);
        assert!(
            timeout >= 1.5 * interval + 5.0 && timeout <= 2.0 * interval + 5.0,
            "{interval} -> {timeout}"
        );
    }
}

#[test]
fn huge_bounds_saturate_instead_of_overflowing() {
    let config =
        Config::from_toml_str(&format!("[heartbeat]\nmax_s = {}\n", u32::MAX)).expect("parses");
    assert_eq!(config.welcome_idle_timeout_s(), u32::MAX);
}

#[test]
fn inverted_bounds_do_not_panic() {
    let config = Config::from_toml_str("[heartbeat]\nmin_s = 60\nmax_s = 30\n").expect("parses");
    assert!(config.validate().is_err());
    let _ = config.idle_timeout_s(45);
}
