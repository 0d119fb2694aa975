//! Bad input on the wire gets an error code or a closed connection, while another client keeps
//! producing and consuming correctly, and no stored data changes.

mod support;

use bytes::{BufMut, BytesMut};
use kafka_protocol::messages::api_versions_response::ApiVersionsResponse;
use kafka_protocol::messages::*;
use kafka_protocol::protocol::StrBytes;
use rdkafka::producer::Producer;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;
use support::kafka::{batch, create, list_offsets, produce};
use support::rdk::{self, Deliveries};
use support::{Raw, Spool};

fn raw_frame(api_key: i16, version: i16, body: &[u8]) -> Vec<u8> {
    let mut b = BytesMut::new();
    b.put_i32((10 + body.len()) as i32);
    b.put_i16(api_key);
    b.put_i16(version);
    b.put_i32(99);
    b.put_i16(-1);
    b.extend_from_slice(body);
    b.to_vec()
}

fn alive(addr: &str) -> bool {
    let mut c = Raw::connect(addr);
    let r: ApiVersionsResponse = c.request(
        ApiKey::ApiVersions,
        3,
        &ApiVersionsRequest::default()
            .with_client_software_name(StrBytes::from_static_str("t"))
            .with_client_software_version(StrBytes::from_static_str("1")),
    );
    r.error_code == 0 && !r.api_keys.is_empty()
}

fn log_end(addr: &str, topic: &str) -> i64 {
    let r: ListOffsetsResponse =
        Raw::connect(addr).request(ApiKey::ListOffsets, 7, &list_offsets(topic, 0, -1));
    r.topics[0].partitions[0].offset
}

#[test]
fn bad_input_is_refused_while_others_are_served() {
    let dir = tempfile::tempdir().unwrap();
    let spool = Spool::start(dir.path(), &["--set", "socket_request_max_bytes=1048576"]);
    let addr = spool.addr.clone();

    // A well-behaved client producing throughout.
    let stop = Arc::new(AtomicBool::new(false));
    let deliveries = Deliveries::default();
    let good = {
        let (addr, stop, deliveries) = (addr.clone(), stop.clone(), deliveries.clone());
        std::thread::spawn(move || {
            let p = rdk::producer(
                &addr,
                &[("enable.idempotence", "true"), ("linger.ms", "2")],
                &deliveries,
            );
            let mut i = 0u32;
            while !stop.load(Ordering::Relaxed) && i < 200_000 {
                let v = format!("good-{i}");
                if p.send(
                    rdkafka::producer::BaseRecord::<str, str>::to("good")
                        .payload(&v)
                        .key(&v),
                )
                .is_ok()
                {
                    i += 1;
                }
                p.poll(Duration::from_millis(1));
            }
            p.flush(Duration::from_secs(30)).unwrap();
            i
        })
    };

    // The victim topic gets one good batch; nothing that follows may change it.
    let mut c = Raw::connect(&addr);
    let created: CreateTopicsResponse =
        c.request(ApiKey::CreateTopics, 5, &create("victim", 1, &[]));
    assert_eq!(created.topics[0].error_code, 0);
    let r: ProduceResponse = c.request(
        ApiKey::Produce,
        9,
        // Current timestamps: records from 1970 are past any retention and may go at the
        // broker's next retention check, which is not what this test is about.
        &produce(
            "victim",
            0,
            1,
            batch(&["a", "b", "c"], support::kafka::now_ms()),
        ),
    );
    let first = &r.responses[0].partition_responses[0];
    assert_eq!(first.error_code, 0, "{:?}", first.error_message);
    let end_before = log_end(&addr, "victim");
    assert_eq!(end_before, 3);

    // Cases that must close the connection.
    let closing: Vec<(&str, Vec<u8>)> = vec![
        ("oversized frame", {
            let mut b = vec![];
            b.extend(200_000_000i32.to_be_bytes());
            b.extend([0u8; 64]);
            b
        }),
        ("negative length", (-5i32).to_be_bytes().to_vec()),
        (
            "garbage",
            (0..2000u32)
                .map(|i| (i.wrapping_mul(2654435761) >> 13) as u8)
                .collect(),
        ),
        ("unknown api key", raw_frame(9999, 0, &[])),
        ("unsupported metadata version", raw_frame(3, 99, &[])),
        (
            "not served api",
            raw_frame(ApiKey::AddPartitionsToTxn as i16, 3, &[0; 40]),
        ),
        (
            "truncated produce body",
            raw_frame(0, 9, &[0xff, 0xff, 0, 1]),
        ),
        (
            "forged array count",
            raw_frame(3, 1, &[0x7f, 0xff, 0xff, 0xff]),
        ),
        ("frame claims more than it sends", {
            let mut b = vec![];
            b.extend(1000i32.to_be_bytes());
            b.extend([0u8; 20]);
            b
        }),
    ];
    for (name, bytes) in closing {
        let mut conn = Raw::connect(&addr);
        conn.send_bytes(&bytes);
        if name == "frame claims more than it sends" {
            conn.stream.shutdown(std::net::Shutdown::Write).unwrap();
        }
        assert!(
            conn.is_closed(),
            "{name}: the broker kept the connection open"
        );
        assert!(alive(&addr), "{name}: broker stopped serving");
    }

    // ApiVersions newer than served: an answer in v0 shape with UNSUPPORTED_VERSION.
    let mut conn = Raw::connect(&addr);
    conn.send_bytes(&raw_frame(18, 99, &[]));
    let mut frame = conn.read_frame().expect("an ApiVersions answer");
    let _header =
        <ResponseHeader as kafka_protocol::protocol::Decodable>::decode(&mut frame, 0).unwrap();
    let v0 = <ApiVersionsResponse as kafka_protocol::protocol::Decodable>::decode(&mut frame, 0)
        .unwrap();
    assert_eq!(v0.error_code, 35);
    assert!(v0.api_keys.iter().any(|k| k.api_key == 0));

    // A corrupt batch (bit flipped after the CRC was computed): CORRUPT_MESSAGE, nothing stored.
    let mut corrupt = BytesMut::from(&batch(&["x", "y"], 1)[..]);
    let last = corrupt.len() - 1;
    corrupt[last] ^= 0x01;
    let r: ProduceResponse = c.request(
        ApiKey::Produce,
        9,
        &produce("victim", 0, 1, corrupt.freeze()),
    );
    assert_eq!(
        r.responses[0].partition_responses[0].error_code, 2,
        "CORRUPT_MESSAGE"
    );
    // A batch whose length field runs past the records: CORRUPT_MESSAGE too.
    let mut torn = BytesMut::from(&batch(&["x"], 1)[..]);
    torn[8..12].copy_from_slice(&5000i32.to_be_bytes());
    let r: ProduceResponse = c.request(ApiKey::Produce, 9, &produce("victim", 0, 1, torn.freeze()));
    assert_eq!(
        r.responses[0].partition_responses[0].error_code, 2,
        "CORRUPT_MESSAGE"
    );
    // Two batches in one partition: INVALID_RECORD (v3+ carries exactly one).
    let mut two = BytesMut::from(&batch(&["x"], 1)[..]);
    two.extend_from_slice(&batch(&["y"], 1));
    let r: ProduceResponse = c.request(ApiKey::Produce, 9, &produce("victim", 0, 1, two.freeze()));
    assert_eq!(
        r.responses[0].partition_responses[0].error_code, 87,
        "INVALID_RECORD"
    );
    // A bad acks value.
    let r: ProduceResponse = c.request(
        ApiKey::Produce,
        9,
        &produce("victim", 0, 1, batch(&["z"], 1)).with_acks(7),
    );
    assert_eq!(
        r.responses[0].partition_responses[0].error_code, 21,
        "INVALID_REQUIRED_ACKS"
    );
    assert_eq!(
        log_end(&addr, "victim"),
        end_before,
        "bad input changed the victim's log"
    );

    stop.store(true, Ordering::Relaxed);
    let sent = good.join().unwrap() as usize;
    assert!(
        deliveries.failed.lock().unwrap().is_empty(),
        "{:?}",
        deliveries.failed.lock().unwrap().first()
    );
    let acked = deliveries.acked.lock().unwrap().clone();
    assert_eq!(acked.len(), sent);
    let got = rdk::consume_all(&addr, "good", 1, sent, Duration::from_secs(60));
    assert_eq!(got.len(), sent, "the good client's records");
    for (i, r) in got.iter().enumerate() {
        assert_eq!(
            (r.offset, r.value.as_str()),
            (i as i64, format!("good-{i}").as_str())
        );
    }
    let victim = rdk::consume_all(&addr, "victim", 1, 3, Duration::from_secs(20));
    let values: Vec<&str> = victim.iter().map(|r| r.value.as_str()).collect();
    assert_eq!(values, ["a", "b", "c"]);
}
