//! Kafka's connection and memory limits against a real broker: connections.max.idle.ms, a
//! deadline for a request once begun, max.connections and max.connections.per.ip (with
//! overrides), and queued.max.request.bytes under concurrent large produces.

mod support;

use kafka_protocol::messages::*;
use kafka_protocol::protocol::StrBytes;
use std::net::TcpStream;
use std::time::{Duration, Instant};
use support::kafka::{batch, create, fetch, produce};
use support::{wait_for, Raw, Spool};

fn api_versions(c: &mut Raw) -> Option<ApiVersionsResponse> {
    c.try_request(
        ApiKey::ApiVersions,
        3,
        &ApiVersionsRequest::default()
            .with_client_software_name(StrBytes::from_static_str("t"))
            .with_client_software_version(StrBytes::from_static_str("1")),
    )
}

/// A connection to `addr` from the loopback address `source`.
fn connect_from(source: &str, addr: &str) -> Raw {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_io()
        .build()
        .unwrap();
    let stream: TcpStream = rt.block_on(async {
        let socket = tokio::net::TcpSocket::new_v4().unwrap();
        socket.bind(format!("{source}:0").parse().unwrap()).unwrap();
        let s = socket.connect(addr.parse().unwrap()).await.unwrap();
        let s = s.into_std().unwrap();
        s.set_nonblocking(false).unwrap();
        s
    });
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    Raw::from_stream(stream)
}

#[test]
fn idle_connections_close_but_not_while_a_response_is_pending() {
    let dir = tempfile::tempdir().unwrap();
    let spool = Spool::start(dir.path(), &["--set", "connections_max_idle_ms=400"]);
    let mut c = Raw::connect(&spool.addr);
    let created: CreateTopicsResponse = c.request(ApiKey::CreateTopics, 5, &create("t", 1, &[]));
    assert_eq!(created.topics[0].error_code, 0);

    // A long poll that outlasts the idle timeout: the connection waits on the broker, so it is
    // not idle, and the answer arrives.
    let started = Instant::now();
    let r: FetchResponse = c.request(ApiKey::Fetch, 12, &fetch("t", 0, 0, 1500, 1 << 20));
    assert!(
        started.elapsed() >= Duration::from_millis(1400),
        "the fetch waited"
    );
    assert_eq!(r.responses[0].partitions[0].error_code, 0);

    // Then silence: the broker closes it.
    let started = Instant::now();
    assert!(c.is_closed(), "an idle connection was left open");
    let waited = started.elapsed();
    assert!(
        waited >= Duration::from_millis(300) && waited < Duration::from_secs(5),
        "closed after {waited:?}, expected about 400 ms"
    );
    assert!(api_versions(&mut Raw::connect(&spool.addr)).is_some());
}

#[test]
fn a_request_that_trickles_in_is_cut_off() {
    let dir = tempfile::tempdir().unwrap();
    let spool = Spool::start(dir.path(), &["--set", "request_read_timeout_ms=500"]);
    // Half a size prefix, and half a body: each must complete within the deadline.
    for partial in [&[0u8, 0][..], &[0, 0, 0, 40, 0, 18, 0, 3][..]] {
        let mut c = Raw::connect(&spool.addr);
        assert!(api_versions(&mut c).is_some());
        let started = Instant::now();
        c.send_bytes(partial);
        assert!(
            c.is_closed(),
            "a request begun and never finished held the connection"
        );
        let waited = started.elapsed();
        assert!(
            waited >= Duration::from_millis(400) && waited < Duration::from_secs(5),
            "closed after {waited:?}, expected about 500 ms"
        );
    }
    // A connection that sends nothing at all is idle, not late: it stays (idle is 10 minutes).
    let mut quiet = Raw::connect(&spool.addr);
    quiet
        .stream
        .set_read_timeout(Some(Duration::from_millis(1200)))
        .unwrap();
    assert!(!quiet.is_closed(), "a quiet connection was closed");
    assert!(api_versions(&mut quiet).is_some());
}

#[test]
fn connections_beyond_the_caps_are_closed_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let spool = Spool::start(
        dir.path(),
        &[
            "--set",
            "max_connections_per_ip=3",
            "--set",
            "max_connections_per_ip_overrides=127.0.0.2:5",
            "--set",
            "max_connections=9",
        ],
    );
    let addr = spool.addr.clone();
    let mut from_one: Vec<Raw> = (0..3).map(|_| Raw::connect(&addr)).collect();
    for c in &mut from_one {
        assert!(api_versions(c).is_some());
    }
    let mut fourth = Raw::connect(&addr);
    let started = Instant::now();
    assert!(
        fourth.is_closed(),
        "a fourth connection from 127.0.0.1 was served"
    );
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "refused at once, not left hanging"
    );

    // The override lets 127.0.0.2 open five.
    let mut from_two: Vec<Raw> = (0..5).map(|_| connect_from("127.0.0.2", &addr)).collect();
    for c in &mut from_two {
        assert!(api_versions(c).is_some(), "within 127.0.0.2's override");
    }
    assert!(connect_from("127.0.0.2", &addr).is_closed());

    // Eight open; the ninth (from a third address) is the broker's last place, the tenth is over
    // max_connections.
    let mut ninth = connect_from("127.0.0.3", &addr);
    assert!(api_versions(&mut ninth).is_some());
    let mut tenth = connect_from("127.0.0.4", &addr);
    assert!(
        tenth.is_closed(),
        "a connection past max_connections was served"
    );

    // A place freed is a place to reuse.
    drop(from_one.pop());
    let reconnected = wait_for(Duration::from_secs(10), || {
        let mut c = Raw::connect(&addr);
        api_versions(&mut c).map(|_| c)
    });
    assert!(reconnected.is_some(), "a freed place was not given back");
    assert!(
        spool.log_tail().contains("connection refused"),
        "refusals are logged: {}",
        spool.log_tail()
    );
}

/// Peak RSS above the start, in MiB, after `senders` concurrent produces of `request_mib` each
/// (one record whose key and value are each half of it), all of which must succeed.
fn peak_growth_mib(budget: &str, senders: usize, request_mib: usize) -> u64 {
    let dir = tempfile::tempdir().unwrap();
    let max = ((request_mib + 1) << 20).to_string();
    let spool = Spool::start(
        dir.path(),
        &[
            "--set",
            &format!("socket_request_max_bytes={max}"),
            "--set",
            &format!("message_max_bytes={max}"),
            "--set",
            &format!("queued_max_request_bytes={budget}"),
        ],
    );
    let mut c = Raw::connect(&spool.addr);
    let created: CreateTopicsResponse = c.request(ApiKey::CreateTopics, 5, &create("big", 1, &[]));
    assert_eq!(created.topics[0].error_code, 0);
    let before = spool.memory_kib("VmHWM");
    let value = "v".repeat(request_mib << 19);
    let body = produce("big", 0, 1, batch(&[&value], support::kafka::now_ms()));
    let threads: Vec<_> = (0..senders)
        .map(|_| {
            let (addr, body) = (spool.addr.clone(), body.clone());
            std::thread::spawn(move || {
                let mut c = Raw::connect(&addr);
                c.stream
                    .set_read_timeout(Some(Duration::from_secs(120)))
                    .unwrap();
                let r: ProduceResponse = c.request(ApiKey::Produce, 9, &body);
                r.responses[0].partition_responses[0].error_code
            })
        })
        .collect();
    for t in threads {
        let code = t.join();
        assert!(
            matches!(code, Ok(0)),
            "every large produce succeeds: {code:?}; log:\n{}",
            spool.log_tail()
        );
    }
    let r: ListOffsetsResponse = c.request(
        ApiKey::ListOffsets,
        7,
        &support::kafka::list_offsets("big", 0, -1),
    );
    assert_eq!(r.topics[0].partitions[0].offset, senders as i64);
    (spool.memory_kib("VmHWM").saturating_sub(before)) / 1024
}

#[test]
fn the_request_memory_budget_bounds_concurrent_large_produces() {
    // Ten 16 MiB produces at once. With a budget of one request the broker reads one at a time,
    // so its peak does not grow with the senders (a request is held about four times over on
    // its way to the log: the frame, the appended copy and the allocator's slack); without a
    // bound it holds all ten.
    let bounded = peak_growth_mib(&(17 << 20).to_string(), 10, 16);
    let unbounded = peak_growth_mib("-1", 10, 16);
    eprintln!("peak RSS growth: bounded {bounded} MiB, unbounded {unbounded} MiB");
    assert!(
        bounded <= 6 * 16,
        "ten 16 MiB requests within a 17 MiB budget grew RSS by {bounded} MiB"
    );
    // How many of the ten an unbounded broker holds at once depends on how they are scheduled
    // and how loaded the machine is (seen: 88 to over 160 MiB), so only the direction is
    // asserted here; the bound itself is the assertion above.
    assert!(
        unbounded > bounded,
        "without a budget the same load should cost more ({unbounded} vs {bounded} MiB)"
    );
}
