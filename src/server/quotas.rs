//! Connection admission: `max_connections` in all and `max_connections_per_ip` (with its
//! per-address overrides) from any one address. A connection is admitted when it is accepted
//! and holds its slot until it closes; one over a limit is closed at once, so its client sees
//! the refusal and backs off instead of waiting in the listen queue.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use thiserror::Error;

#[derive(Debug, Error, PartialEq, Eq)]
pub enum Refused {
    #[error("the broker has max_connections ({max}) connections open")]
    Broker { max: usize },
    #[error("{ip} has max_connections_per_ip ({max}) connections open")]
    PerIp { ip: IpAddr, max: usize },
}

pub struct ConnectionQuotas {
    max_total: usize,
    max_per_ip: usize,
    overrides: HashMap<IpAddr, usize>,
    /// Open connections in all and per address. Held only to count.
    open: Mutex<Open>,
}

#[derive(Default)]
struct Open {
    total: usize,
    per_ip: HashMap<IpAddr, usize>,
}

/// An admitted connection's place; dropping it frees the place.
pub struct Slot {
    quotas: Arc<ConnectionQuotas>,
    ip: IpAddr,
}

impl ConnectionQuotas {
    pub fn new(max_total: usize, max_per_ip: usize, overrides: HashMap<IpAddr, usize>) -> Self {
        ConnectionQuotas {
            max_total,
            max_per_ip,
            overrides,
            open: Mutex::new(Open::default()),
        }
    }

    /// The limit for one address. An IPv4 address mapped into IPv6 counts as itself.
    fn limit_for(&self, ip: IpAddr) -> usize {
        self.overrides.get(&ip).copied().unwrap_or(self.max_per_ip)
    }

    pub fn admit(self: &Arc<Self>, ip: IpAddr) -> Result<Slot, Refused> {
        let ip = ip.to_canonical();
        let mut open = self
            .open
            .lock()
            .expect("connection counts are never poisoned");
        if open.total >= self.max_total {
            return Err(Refused::Broker {
                max: self.max_total,
            });
        }
        let max = self.limit_for(ip);
        let count = open.per_ip.entry(ip).or_insert(0);
        if *count >= max {
            if *count == 0 {
                open.per_ip.remove(&ip);
            }
            return Err(Refused::PerIp { ip, max });
        }
        *count += 1;
        open.total += 1;
        Ok(Slot {
            quotas: self.clone(),
            ip,
        })
    }

    /// Connections open now.
    pub fn open(&self) -> usize {
        self.open
            .lock()
            .expect("connection counts are never poisoned")
            .total
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut open = self
            .quotas
            .open
            .lock()
            .expect("connection counts are never poisoned");
        open.total -= 1;
        if let Some(count) = open.per_ip.get_mut(&self.ip) {
            *count -= 1;
            if *count == 0 {
                open.per_ip.remove(&self.ip);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn total_and_per_address_limits_with_overrides() {
        let a: IpAddr = "127.0.0.1".parse().unwrap();
        let b: IpAddr = "127.0.0.2".parse().unwrap();
        let c: IpAddr = "127.0.0.3".parse().unwrap();
        let q = Arc::new(ConnectionQuotas::new(5, 2, HashMap::from([(c, 0)])));
        let a1 = q.admit(a).unwrap();
        let _a2 = q.admit(a).unwrap();
        assert_eq!(q.admit(a).err(), Some(Refused::PerIp { ip: a, max: 2 }));
        assert_eq!(q.admit(c).err(), Some(Refused::PerIp { ip: c, max: 0 }));
        let mapped: IpAddr = "::ffff:127.0.0.1".parse().unwrap();
        assert!(
            q.admit(mapped).is_err(),
            "a mapped address is the same peer"
        );
        drop(a1);
        let _a3 = q.admit(mapped).unwrap();
        let _b1 = q.admit(b).unwrap();
        let _b2 = q.admit(b).unwrap();
        assert_eq!(q.open(), 4);
        let d: IpAddr = "127.0.0.4".parse().unwrap();
        let _d1 = q.admit(d).unwrap();
        assert_eq!(q.admit(d).err(), Some(Refused::Broker { max: 5 }));
        assert_eq!(q.open(), 5);
    }
}
