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
    for target in ["request", "records", "controller_rpc"] {
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
