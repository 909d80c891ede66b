//! Value rules shared by several sections: ids, addresses, CQL identifiers.

use std::net::{IpAddr, SocketAddr};

/// Longest node id, in bytes (the same rule as the protocol's ids).
pub(crate) const MAX_NODE_ID_LEN: usize = 64;

/// Why `id` is not a valid node id, or `None` when it is.
pub(crate) fn node_id_error(id: &str) -> Option<String> {
    if id.is_empty() {
        return Some("must not be empty".into());
    }
    if id.len() > MAX_NODE_ID_LEN {
        return Some(format!("{id:?} is longer than {MAX_NODE_ID_LEN} bytes"));
    }
    if !id
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'))
    {
        return Some(format!("{id:?} has a character outside [A-Za-z0-9_.-]"));
    }
    None
}

/// Parses a listener address (an IP literal and a port; port 0 picks a free port).
pub(crate) fn parse_listen(value: &str) -> Result<SocketAddr, String> {
    value.parse().map_err(|_| {
        format!(
            "{value:?} is not an IP address and port (e.g. \"127.0.0.1:7400\" or \"[::1]:7400\"; \
             host names are not accepted for listeners)"
        )
    })
}

/// Why `value` is not a usable `"host:port"` of a remote peer, or `None` when it is.
///
/// The host is an IPv4 literal, a bracketed IPv6 literal or a DNS name; the port is
/// 1–65535 (a peer cannot be reached on port 0).
pub(crate) fn host_port_error(value: &str) -> Option<String> {
    if let Ok(addr) = value.parse::<SocketAddr>() {
        return (addr.port() == 0).then(|| format!("{value:?}: port 0 cannot be reached"));
    }
    let Some((host, port)) = value.rsplit_once(':') else {
        return Some(format!("{value:?} is not \"host:port\""));
    };
    match port.parse::<u16>() {
        Ok(0) => return Some(format!("{value:?}: port 0 cannot be reached")),
        Ok(_) => {}
        Err(_) => {
            return Some(format!(
                "{value:?}: {port:?} is not a port number (1-65535)"
            ));
        }
    }
    if host.contains(':') || host.starts_with('[') {
        return Some(format!(
            "{value:?}: an IPv6 address must be written in brackets, e.g. \"[::1]:9042\""
        ));
    }
    host_name_error(host).map(|why| format!("{value:?}: {why}"))
}

/// Why `host` is not a DNS name or IPv4 literal, or `None` when it is.
pub(crate) fn host_name_error(host: &str) -> Option<String> {
    if host.is_empty() {
        return Some("the host is empty".into());
    }
    if host.parse::<IpAddr>().is_ok() {
        return None;
    }
    if host.len() > 253 {
        return Some("the host name is longer than 253 bytes".into());
    }
    let label_ok = |label: &str| {
        !label.is_empty()
            && label.len() <= 63
            && !label.starts_with('-')
            && !label.ends_with('-')
            && label
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-')
    };
    if host.trim_end_matches('.').split('.').all(label_ok) {
        None
    } else {
        Some(format!("{host:?} is not a valid host name or IP address"))
    }
}

/// Whether clients on other machines cannot reach `addr` (127.0.0.0/8, `::1`, or an
/// IPv4-mapped loopback address).
pub(crate) fn is_loopback(addr: &SocketAddr) -> bool {
    match addr.ip() {
        IpAddr::V4(ip) => ip.is_loopback(),
        IpAddr::V6(ip) => {
            ip.is_loopback() || ip.to_ipv4_mapped().is_some_and(|v4| v4.is_loopback())
        }
    }
}

/// Whether `host` (an IP literal, bracketed or not, or a host name) names this
/// machine only: a loopback address, or `localhost`.
pub(crate) fn is_loopback_host(host: &str) -> bool {
    let bare = host
        .strip_prefix('[')
        .and_then(|h| h.strip_suffix(']'))
        .unwrap_or(host);
    match bare.parse::<IpAddr>() {
        Ok(ip) => is_loopback(&SocketAddr::new(ip, 0)),
        Err(_) => bare.eq_ignore_ascii_case("localhost"),
    }
}

/// Longest keyspace name Cassandra and ScyllaDB accept.
pub(crate) const MAX_KEYSPACE_LEN: usize = 48;

/// Keyspaces that belong to the database itself.
const RESERVED_KEYSPACES: &[&str] = &[
    "system",
    "system_auth",
    "system_distributed",
    "system_distributed_everywhere",
    "system_schema",
    "system_traces",
    "system_views",
    "system_virtual_schema",
];

/// Why `name` is not a keyspace name we accept, or `None` when it is.
///
/// Only unquoted CQL identifiers in lower case are accepted: CQL folds unquoted
/// names to lower case, so `Chorus` and `"Chorus"` would name different keyspaces.
pub(crate) fn keyspace_error(name: &str) -> Option<String> {
    let mut bytes = name.bytes();
    let first_ok = bytes.next().is_some_and(|b| b.is_ascii_lowercase());
    let rest_ok = bytes.all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_');
    if !first_ok || !rest_ok {
        return Some(format!(
            "{name:?} is not a valid CQL identifier: use a lower-case letter followed by \
             lower-case letters, digits or '_'"
        ));
    }
    if name.len() > MAX_KEYSPACE_LEN {
        return Some(format!(
            "{name:?} is longer than {MAX_KEYSPACE_LEN} characters"
        ));
    }
    if RESERVED_KEYSPACES.contains(&name) {
        return Some(format!("{name:?} is a keyspace of the database itself"));
    }
    None
}
