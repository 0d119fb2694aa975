//! The fuzz targets' seed corpus (`fuzz/seeds/<target>/`): one request per served API and
//! version, a batch per codec, and each kind of controller RPC. The committed files must be
//! what this file generates (so a new route or version cannot go unfuzzed); with
//! `SPOOL_WRITE_FUZZ_SEEDS=1` it writes them instead.

mod support;

use bytes::{BufMut, BytesMut};
use kafka_protocol::records::Compression;
use spool::cluster::network::{LeaderRequest, RpcRequest};
use spool::cluster::{MetadataCommand, TypeConfig};
use spool::protocol::routes::ROUTES;
use std::collections::BTreeMap;
use std::path::PathBuf;

/// A request frame body: a header (v2, with a client id and no tagged fields, or v1 for the
/// older flexible-less versions) followed by `body`.
fn request(api_key: i16, version: i16, flexible: bool, body: &[u8]) -> Vec<u8> {
    let mut b = BytesMut::new();
    b.put_i16(api_key);
    b.put_i16(version);
    b.put_i32(7);
    b.put_i16(4);
    b.extend_from_slice(b"seed");
    if flexible {
        b.put_u8(0);
    }
    b.extend_from_slice(body);
    b.to_vec()
}

fn seeds() -> BTreeMap<String, Vec<u8>> {
    let mut out = BTreeMap::new();
    for route in ROUTES {
        for version in route.min_version..=route.max_version {
            let key = route.api_key as i16;
            let flexible = route.api_key.request_header_version(version) >= 2;
            // Zeros decode as empty strings, arrays and numbers in most bodies: a start the
            // fuzzer grows from.
            out.insert(
                format!("request/{key:02}-{version:02}"),
                request(key, version, flexible, &[0; 48]),
            );
        }
    }
    let produce = support::kafka::produce(
        "t",
        0,
        -1,
        support::kafka::batch_with(&["a", "b"], 1, None, Compression::None),
    );
    let mut body = BytesMut::new();
    kafka_protocol::protocol::Encodable::encode(&produce, &mut body, 9).unwrap();
    out.insert("request/00-09-batch".into(), request(0, 9, true, &body));
    for (name, codec) in [
        ("none", Compression::None),
        ("gzip", Compression::Gzip),
        ("snappy", Compression::Snappy),
        ("lz4", Compression::Lz4),
        ("zstd", Compression::Zstd),
    ] {
        let batch = support::kafka::batch_with(&["k1", "value-2", "v3"], 1, None, codec);
        for mode in [0u8, 1] {
            let mut seed = vec![mode];
            seed.extend_from_slice(&batch);
            out.insert(format!("records/{name}-{mode}"), seed);
        }
    }
    let vote = openraft::Vote::new(3, 1);
    let rpcs: Vec<(&str, RpcRequest)> = vec![
        (
            "vote",
            RpcRequest::Vote(openraft::raft::VoteRequest::new(vote, None)),
        ),
        (
            "append",
            RpcRequest::AppendEntries(openraft::raft::AppendEntriesRequest::<TypeConfig> {
                vote,
                prev_log_id: None,
                entries: vec![openraft::Entry {
                    log_id: openraft::LogId::new(openraft::CommittedLeaderId::new(3, 1), 5),
                    payload: openraft::EntryPayload::Normal(MetadataCommand::RegisterNode {
                        node_id: 1,
                        host: "127.0.0.1".into(),
                        port: 9092,
                        rack: None,
                        incarnation: Some(1),
                        listeners: Vec::new(),
                    }),
                }],
                leader_commit: None,
            }),
        ),
        (
            "propose",
            RpcRequest::Leader(LeaderRequest::Propose(MetadataCommand::Heartbeat {
                node_id: 1,
                at_ms: 1,
            })),
        ),
    ];
    for (name, rpc) in rpcs {
        out.insert(
            format!("controller_rpc/{name}"),
            serde_json::to_vec(&rpc).unwrap(),
        );
    }
    // SASL: mode byte, then for the authenticator one-byte-length frames.
    let frames = |frames: &[Vec<u8>]| {
        let mut seed = vec![0u8];
        for f in frames {
            seed.push(f.len() as u8);
            seed.extend_from_slice(f);
        }
        seed
    };
    let handshake = |version: i16, mechanism: &str| {
        let mut body = (mechanism.len() as i16).to_be_bytes().to_vec();
        body.extend_from_slice(mechanism.as_bytes());
        request(17, version, false, &body)
    };
    let authenticate = |token: &[u8]| {
        let mut body = (token.len() as i32).to_be_bytes().to_vec();
        body.extend_from_slice(token);
        request(36, 1, false, &body)
    };
    out.insert(
        "sasl/plain".into(),
        frames(&[
            request(18, 0, false, &[]),
            handshake(1, "PLAIN"),
            authenticate(b"\0bob\0pw"),
        ]),
    );
    out.insert(
        "sasl/plain-v0".into(),
        frames(&[handshake(0, "PLAIN"), b"\0bob\0pw".to_vec()]),
    );
    out.insert(
        "sasl/scram".into(),
        frames(&[
            handshake(1, "SCRAM-SHA-256"),
            authenticate(b"n,,n=alice,r=abcdef"),
            authenticate(b"c=biws,r=abcdef,p=AAAA"),
        ]),
    );
    let mut jaas = vec![1u8];
    jaas.extend_from_slice(
        b"org.apache.kafka.common.security.plain.PlainLoginModule required user_a=\"b\";",
    );
    out.insert("sasl/jaas".into(), jaas);
    let mut rules = vec![2u8];
    rules.extend_from_slice(b"RULE:^CN=(.*?),O=(.*)$/$1@$2/L,DEFAULT\nCN=a,O=b");
    out.insert("sasl/rules".into(), rules);
    // A minimal certificate: SEQUENCE { SEQUENCE { [0] v3, serial, alg, issuer, validity,
    // subject CN=a } }.
    out.insert(
        "sasl/subject".into(),
        vec![
            3, 0x30, 0x20, 0x30, 0x1c, 0xa0, 0x03, 0x02, 0x01, 0x02, 0x02, 0x01, 0x01, 0x30, 0x00,
            0x30, 0x00, 0x30, 0x00, 0x30, 0x0c, 0x31, 0x0a, 0x30, 0x08, 0x06, 0x03, 0x55, 0x04,
            0x03, 0x0c, 0x01, b'a', 0x30, 0x00,
        ],
    );
    out
}

#[test]
fn the_committed_seed_corpus_is_current() {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("fuzz/seeds");
    let wanted = seeds();
    if std::env::var_os("SPOOL_WRITE_FUZZ_SEEDS").is_some() {
        let _ = std::fs::remove_dir_all(&root);
        for (name, bytes) in &wanted {
            let path = root.join(name);
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(path, bytes).unwrap();
        }
    }
    let mut found = BTreeMap::new();
    for target in ["request", "records", "controller_rpc", "sasl"] {
        for entry in std::fs::read_dir(root.join(target)).unwrap() {
            let path = entry.unwrap().path();
            let name = format!("{target}/{}", path.file_name().unwrap().to_string_lossy());
            found.insert(name, std::fs::read(&path).unwrap());
        }
    }
    let missing: Vec<_> = wanted.keys().filter(|k| !found.contains_key(*k)).collect();
    assert!(
        missing.is_empty(),
        "seeds missing (run with SPOOL_WRITE_FUZZ_SEEDS=1): {missing:?}"
    );
    for (name, bytes) in &wanted {
        assert_eq!(
            &found[name], bytes,
            "{name} is stale (run with SPOOL_WRITE_FUZZ_SEEDS=1)"
        );
    }
    assert_eq!(
        spool::server::principal::subject_dn(&found["sasl/subject"][1..]).as_deref(),
        Some("CN=a")
    );
    // The seeds reach past the header: the produce frame decodes whole, every batch validates.
    let produce = spool::protocol::codec::decode(found["request/00-09-batch"].clone().into());
    assert!(produce.is_ok(), "{:?}", produce.err());
    let checks = spool::log::records::ProducedChecks {
        max_record_bytes: 1 << 20,
        max_uncompressed_bytes: 1 << 20,
        require_keys: false,
    };
    for codec in ["none", "gzip", "snappy", "lz4", "zstd"] {
        let seed = &found[&format!("records/{codec}-0")];
        spool::log::records::validate_produced(&seed[1..], &checks).unwrap();
    }
    for rpc in ["vote", "append", "propose"] {
        let seed = &found[&format!("controller_rpc/{rpc}")];
        serde_json::from_slice::<RpcRequest>(seed).unwrap();
    }
}
