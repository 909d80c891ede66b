//! The process's open-file limit: every connection is a file descriptor, so
//! `connect` with thousands of sessions needs more than the usual soft limit of 1024.

/// Raises the soft open-file limit as far as the hard limit allows and returns the
/// limit in force (0 when it cannot be read). Where the hard limit itself is too low,
/// raise it before starting (`ulimit -n`, as root or through limits.conf).
pub fn raise_open_files() -> u64 {
    match rlimit::increase_nofile_limit(u64::MAX) {
        Ok(limit) => limit,
        Err(_) => rlimit::getrlimit(rlimit::Resource::NOFILE).map_or(0, |(soft, _)| soft),
    }
}
