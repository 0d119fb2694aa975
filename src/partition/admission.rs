//! How many partitions this node can host, from the process's limits, so that a request the
//! node cannot honour is refused before anything is created.
//!
//! Each hosted partition keeps four files open (`.log`, `.index`, `.timeindex`, `.txnindex`)
//! and three memory maps (the log and the two indexes) per segment, and reserves address space
//! for the maps (`segment_bytes` plus two `segment_index_bytes`). The capacity is what the
//! file-descriptor limit (after a share kept for connections), `vm.max_map_count` and the
//! address space allow for partitions of one segment each, or `max_broker_partitions` when that
//! is set and lower. Partitions with many segments use more; the capacity is a ceiling for
//! admission, not a promise.

use crate::config::Config;

/// Files a partition of one segment keeps open.
pub const FDS_PER_PARTITION: u64 = 4;
/// Memory maps a partition of one segment holds.
pub const MAPS_PER_PARTITION: u64 = 3;
/// Descriptors and maps kept for everything else: the quorum, the binary, libraries.
const RESERVED: u64 = 512;
/// Address space assumed usable for log maps: a quarter of a 47-bit user space.
const ADDRESS_SPACE: u64 = 1 << 45;

/// This node's partition capacity and what set it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Capacity {
    pub max_partitions: u64,
    /// The binding limit, for error messages: e.g. "RLIMIT_NOFILE 20000".
    pub basis: String,
}

/// Raises the soft file-descriptor limit to the hard limit, as servers commonly do; returns the
/// limit in force.
pub fn raise_fd_limit() -> Option<u64> {
    use rustix::process::{getrlimit, setrlimit, Resource};
    let limit = getrlimit(Resource::Nofile);
    if limit.current < limit.maximum {
        let raised = rustix::process::Rlimit {
            current: limit.maximum,
            maximum: limit.maximum,
        };
        if let Err(e) = setrlimit(Resource::Nofile, raised) {
            tracing::warn!(error = %e, "cannot raise the open-file limit to its hard limit");
        }
    }
    getrlimit(Resource::Nofile).current
}

/// The capacity from the limits this process has now.
pub fn capacity(config: &Config) -> Capacity {
    let nofile = rustix::process::getrlimit(rustix::process::Resource::Nofile).current;
    let max_map_count = std::fs::read_to_string("/proc/sys/vm/max_map_count")
        .ok()
        .and_then(|s| s.trim().parse::<u64>().ok());
    compute(config, nofile, max_map_count)
}

fn compute(config: &Config, nofile: Option<u64>, max_map_count: Option<u64>) -> Capacity {
    let mut limits: Vec<(u64, String)> = Vec::new();
    if let Some(nofile) = nofile {
        // Connections may take up to max_connections descriptors, but never more than half.
        let for_connections = (config.max_connections as u64).min(nofile / 2);
        let for_partitions = nofile.saturating_sub(for_connections + RESERVED);
        limits.push((
            for_partitions / FDS_PER_PARTITION,
            format!("RLIMIT_NOFILE {nofile} (with {for_connections} kept for connections)"),
        ));
    }
    if let Some(maps) = max_map_count {
        limits.push((
            maps.saturating_sub(RESERVED) / MAPS_PER_PARTITION,
            format!("vm.max_map_count {maps}"),
        ));
    }
    let per_partition =
        config.segment_bytes.max(0) as u64 + 2 * config.segment_index_bytes.max(0) as u64;
    limits.push((
        ADDRESS_SPACE / per_partition.max(1),
        format!("address space for segments of {per_partition} bytes"),
    ));
    if config.max_broker_partitions >= 0 {
        limits.push((
            config.max_broker_partitions as u64,
            format!("max_broker_partitions {}", config.max_broker_partitions),
        ));
    }
    let (max_partitions, basis) = limits
        .into_iter()
        .min_by_key(|(n, _)| *n)
        .expect("the address space always bounds");
    Capacity {
        max_partitions,
        basis,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_tightest_limit_binds() {
        let config = Config::load(None, Vec::new(), &[]).unwrap();
        let c = compute(&config, Some(20_000), Some(65_530));
        // 20000 - 10000 for connections - 512, over 4 per partition.
        assert_eq!(c.max_partitions, (20_000 - 10_000 - 512) / 4);
        assert!(c.basis.contains("RLIMIT_NOFILE"), "{c:?}");
        let c = compute(&config, Some(1 << 20), Some(65_530));
        assert_eq!(c.max_partitions, (65_530 - 512) / 3);
        assert!(c.basis.contains("max_map_count"), "{c:?}");
        let c = compute(&config, None, None);
        assert_eq!(c.max_partitions, (1 << 45) / ((1 << 30) + 2 * 10_485_760));
        let capped = Config::load(None, Vec::new(), &["max_broker_partitions=7".into()]).unwrap();
        assert_eq!(
            compute(&capped, Some(1 << 20), Some(1 << 20)).max_partitions,
            7
        );
    }
}
