//! Hostile input against one real broker, case after case: forged counts in records, a
//! decompression bomb, a payload that lies about its codec, a CreateTopics the node cannot
//! hold, connections that claim huge frames or trickle bytes, and forged controller RPCs.
//! After every case the broker must still answer another client, its RSS must stay bounded,
//! and the victim topic must hold exactly what was acknowledged; at the end it restarts on the
//! same data dir with everything intact.

mod support;

use kafka_protocol::messages::*;
use kafka_protocol::protocol::StrBytes;
use spool::cluster::network::{LeaderRequest, RpcRequest};
use spool::cluster::MetadataCommand;
use std::io::Write;
use std::time::Duration;
use support::kafka::{batch, create, list_offsets, now_ms, produce, raw_batch, raw_record, varint};
use support::{wait_for, Raw, Spool};

const CORRUPT_MESSAGE: i16 = 2;
const MESSAGE_TOO_LARGE: i16 = 10;
const INVALID_RECORD: i16 = 87;
const POLICY_VIOLATION: i16 = 44;

struct Victim {
    spool: Spool,
    baseline_kib: u64,
    acked: Vec<String>,
}

impl Victim {
    fn produce(&self, topic: &str, records: bytes::Bytes) -> i16 {
        let mut c = Raw::connect(&self.spool.addr);
        let r: ProduceResponse = c.request(ApiKey::Produce, 9, &produce(topic, 0, -1, records));
        r.responses[0].partition_responses[0].error_code
    }

    /// The broker answers, acknowledges a good record, and its RSS has not run away.
    fn still_well(&mut self, case: &str) {
        let mut c = Raw::connect(&self.spool.addr);
        let r: Option<ApiVersionsResponse> = c.try_request(
            ApiKey::ApiVersions,
            3,
            &ApiVersionsRequest::default()
                .with_client_software_name(StrBytes::from_static_str("t"))
                .with_client_software_version(StrBytes::from_static_str("1")),
        );
        assert!(r.is_some_and(|r| r.error_code == 0), "{case}: no answer");
        let value = format!("after {case}");
        assert_eq!(
            self.produce("victim", batch(&[&value], now_ms())),
            0,
            "{case}: a good produce failed"
        );
        self.acked.push(value);
        let rss = self.spool.memory_kib("VmRSS");
        assert!(
            rss < self.baseline_kib + 200 * 1024,
            "{case}: RSS grew from {} to {rss} KiB",
            self.baseline_kib
        );
        let end: ListOffsetsResponse =
            c.request(ApiKey::ListOffsets, 7, &list_offsets("victim", 0, -1));
        assert_eq!(
            end.topics[0].partitions[0].offset,
            self.acked.len() as i64,
            "{case}: the victim's log changed"
        );
    }
}

fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    gz.write_all(bytes).unwrap();
    gz.finish().unwrap()
}

#[test]
fn hostile_input_leaves_the_broker_serving_and_its_data_whole() {
    let dir = tempfile::tempdir().unwrap();
    let controller_port = support::free_port();
    let controller = format!("127.0.0.1:{controller_port}");
    // A low open-file limit, so that the partition admission case meets a real limit.
    let spool = Spool::start_with_nofile(
        dir.path(),
        &["--set", &format!("controller_listener={controller}")],
        4096,
    );
    let mut c = Raw::connect(&spool.addr);
    for (topic, configs) in [
        ("victim", vec![]),
        ("compacted", vec![("cleanup.policy", "compact")]),
    ] {
        let r: CreateTopicsResponse =
            c.request(ApiKey::CreateTopics, 5, &create(topic, 1, &configs));
        assert_eq!(r.topics[0].error_code, 0);
    }
    let baseline_kib = spool.memory_kib("VmRSS");
    let mut v = Victim {
        spool,
        baseline_kib,
        acked: Vec::new(),
    };
    v.still_well("start");

    // A record whose header count is near 2^31, on a compacted topic and on a plain one.
    let forged = raw_batch(
        &raw_record(0, b"k", i32::MAX as i64 - 1, &[]),
        1,
        0,
        now_ms(),
    );
    assert_eq!(v.produce("compacted", forged.clone()), INVALID_RECORD);
    assert_eq!(v.produce("victim", forged), INVALID_RECORD);
    v.still_well("a header count near 2^31");

    // A gzip batch claiming 2^31 - 1 records.
    let many = raw_batch(&gzip(&raw_record(0, b"k", 0, &[])), i32::MAX, 1, now_ms());
    assert_eq!(v.produce("victim", many), INVALID_RECORD);
    v.still_well("a gzip record count near 2^31");

    // A bomb: half a MiB of gzip that inflates to 512 MiB, one record's value.
    let value_len: i64 = 512 << 20;
    let mut body = vec![0u8, 0, 0, 2, b'k'];
    varint(&mut body, value_len);
    let mut bomb_record = Vec::new();
    varint(&mut bomb_record, body.len() as i64 + value_len + 1);
    bomb_record.extend(body);
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    gz.write_all(&bomb_record).unwrap();
    let zeros = vec![0u8; 1 << 20];
    for _ in 0..512 {
        gz.write_all(&zeros).unwrap();
    }
    gz.write_all(&[0]).unwrap();
    let bomb = gz.finish().unwrap();
    assert!(bomb.len() < 1 << 20, "the bomb is small: {}", bomb.len());
    assert_eq!(
        v.produce("victim", raw_batch(&bomb, 1, 1, now_ms())),
        MESSAGE_TOO_LARGE
    );
    v.still_well("a gzip bomb");

    // A payload flagged gzip that is not gzip.
    let liar = raw_batch(&raw_record(0, b"k", 0, &[]), 1, 1, now_ms());
    assert_eq!(v.produce("victim", liar), CORRUPT_MESSAGE);
    v.still_well("a payload that is not its codec");

    // More partitions than the node can open.
    let r: CreateTopicsResponse = c.request(ApiKey::CreateTopics, 5, &create("huge", 10_000, &[]));
    assert_eq!(r.topics[0].error_code, POLICY_VIOLATION);
    v.still_well("10,000 partitions");

    // Connections that claim large frames and send a few bytes of them: they cost the memory
    // budget what they claim, not memory, until their read deadline.
    let mut claimers: Vec<Raw> = (0..64)
        .map(|_| {
            let mut c = Raw::connect(&v.spool.addr);
            c.send_bytes(&(4i32 << 20).to_be_bytes());
            c.send_bytes(&[0, 0, 0, 0]);
            c
        })
        .collect();
    v.still_well("64 connections claiming 4 MiB frames");
    for c in claimers.iter_mut() {
        c.send_bytes(&[1]);
    }
    drop(claimers);
    v.still_well("those connections gone");

    // Controller RPCs: from the member's own address a well-formed proposal is answered;
    // from an address that is no member's, a proposal to delete the victim is not, and neither
    // is a vote from a node that is not a voter, from anywhere.
    let rpc = |source: &str, request: &RpcRequest| {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async {
            use tokio::io::{AsyncReadExt, AsyncWriteExt};
            let socket = tokio::net::TcpSocket::new_v4().unwrap();
            socket.bind(format!("{source}:0").parse().unwrap()).unwrap();
            let mut s = socket.connect(controller.parse().unwrap()).await.unwrap();
            let bytes = serde_json::to_vec(request).unwrap();
            let _ = s.write_all(&(bytes.len() as u32).to_be_bytes()).await;
            let _ = s.write_all(&bytes).await;
            let mut answer = [0u8; 4];
            tokio::time::timeout(Duration::from_secs(10), s.read(&mut answer))
                .await
                .expect("an answer or a close, not silence")
                .unwrap_or(0)
        })
    };
    let harmless = RpcRequest::Leader(LeaderRequest::Propose(MetadataCommand::Heartbeat {
        node_id: 1,
        at_ms: now_ms(),
    }));
    assert!(
        rpc("127.0.0.1", &harmless) > 0,
        "the member's own request was refused"
    );
    let delete = RpcRequest::Leader(LeaderRequest::Propose(MetadataCommand::DeleteTopic {
        name: "victim".into(),
    }));
    assert_eq!(
        rpc("127.0.0.2", &delete),
        0,
        "a stranger's proposal was answered"
    );
    let vote = RpcRequest::Vote(openraft::raft::VoteRequest::new(
        openraft::Vote::new(99, 9),
        None,
    ));
    assert_eq!(
        rpc("127.0.0.1", &vote),
        0,
        "a non-voter's vote was answered"
    );
    v.still_well("forged controller RPCs");

    // The same data dir, restarted: every acknowledged record is there.
    assert!(v.spool.terminate(), "clean shutdown");
    v.spool.restart();
    let back = wait_for(Duration::from_secs(30), || {
        let got = support::rdk::consume_all(
            &v.spool.addr,
            "victim",
            1,
            v.acked.len(),
            Duration::from_secs(10),
        );
        (got.len() == v.acked.len()).then_some(got)
    })
    .expect("the victim's records after a restart");
    let values: Vec<&str> = back.iter().map(|r| r.value.as_str()).collect();
    assert_eq!(
        values,
        v.acked.iter().map(String::as_str).collect::<Vec<_>>()
    );
}
