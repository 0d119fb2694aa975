//! Outgoing connections between nodes (Raft RPCs, follower fetches, transaction markers). They
//! leave from this node's own listener address when it names one, so that on a multi-homed host
//! (or several nodes on the loopback addresses of one machine) the peer sees, and a firewall
//! can tell apart, which node is calling.

use std::io;
use std::net::{IpAddr, SocketAddr};
use tokio::net::{TcpSocket, TcpStream};

/// Connects to `addr` (`host:port`), from `source` (port chosen by the system) when given and
/// of the same address family.
pub async fn connect_from(addr: &str, source: Option<IpAddr>) -> io::Result<TcpStream> {
    let mut last = None;
    for target in tokio::net::lookup_host(addr).await? {
        match connect_one(target, source).await {
            Ok(stream) => return Ok(stream),
            Err(e) => last = Some(e),
        }
    }
    Err(last.unwrap_or_else(|| io::Error::other(format!("{addr} resolves to no address"))))
}

async fn connect_one(target: SocketAddr, source: Option<IpAddr>) -> io::Result<TcpStream> {
    let socket = match target {
        SocketAddr::V4(_) => TcpSocket::new_v4()?,
        SocketAddr::V6(_) => TcpSocket::new_v6()?,
    };
    if let Some(ip) = source.filter(|ip| ip.is_ipv4() == target.is_ipv4()) {
        socket.bind(SocketAddr::new(ip, 0))?;
    }
    socket.connect(target).await
}

/// The address outgoing connections leave from: the listener's, unless it is the wildcard.
pub fn source_of(listener: SocketAddr) -> Option<IpAddr> {
    let ip = listener.ip();
    (!ip.is_unspecified()).then_some(ip)
}
