//! Transactions against a real spool process over the wire: the coordinator's answers, KIP-890
//! verification, the last stable offset, aborted-transaction lists in read_committed fetches,
//! fencing, timeouts (across a SIGKILL), and the `spool txn` tools.

mod support;

use kafka_protocol::messages::add_partitions_to_txn_request::AddPartitionsToTxnTopic;
use kafka_protocol::messages::describe_producers_request::TopicRequest;
use kafka_protocol::messages::*;
use std::time::Duration;
use support::cli::spool;
use support::kafka::{self, name, s};
use support::{wait_for, Raw, Spool};

const INVALID_PRODUCER_EPOCH: i16 = 47;
const INVALID_TXN_STATE: i16 = 48;
const INVALID_TRANSACTION_TIMEOUT: i16 = 50;
const UNKNOWN_TOPIC_OR_PARTITION: i16 = 3;
const OPERATION_NOT_ATTEMPTED: i16 = 55;
const PRODUCER_FENCED: i16 = 90;
const TRANSACTIONAL_ID_NOT_FOUND: i16 = 105;

fn create(c: &mut Raw, topic: &str, partitions: i32) {
    let created: CreateTopicsResponse = c.request(
        ApiKey::CreateTopics,
        5,
        &kafka::create(topic, partitions, &[]),
    );
    assert_eq!(created.topics[0].error_code, 0);
}

/// InitProducerId for a transactional id, after finding its coordinator as clients do (the
/// first look-up creates the transaction state topic).
fn init(c: &mut Raw, id: &str, timeout_ms: i32) -> InitProducerIdResponse {
    let found: FindCoordinatorResponse = c.request(
        ApiKey::FindCoordinator,
        4,
        &FindCoordinatorRequest::default()
            .with_key_type(1)
            .with_coordinator_keys(vec![s(id)]),
    );
    assert_eq!(found.coordinators[0].error_code, 0, "{found:?}");
    c.request(
        ApiKey::InitProducerId,
        4,
        &InitProducerIdRequest::default()
            .with_transactional_id(Some(TransactionalId(s(id))))
            .with_transaction_timeout_ms(timeout_ms)
            .with_producer_id(ProducerId(-1))
            .with_producer_epoch(-1),
    )
}

fn add(
    c: &mut Raw,
    id: &str,
    pid: i64,
    epoch: i16,
    tps: &[(&str, i32)],
) -> Vec<(String, i32, i16)> {
    let topics = tps
        .iter()
        .map(|(t, p)| {
            AddPartitionsToTxnTopic::default()
                .with_name(name(t))
                .with_partitions(vec![*p])
        })
        .collect();
    let r: AddPartitionsToTxnResponse = c.request(
        ApiKey::AddPartitionsToTxn,
        3,
        &AddPartitionsToTxnRequest::default()
            .with_v3_and_below_transactional_id(TransactionalId(s(id)))
            .with_v3_and_below_producer_id(ProducerId(pid))
            .with_v3_and_below_producer_epoch(epoch)
            .with_v3_and_below_topics(topics),
    );
    r.results_by_topic_v3_and_below
        .iter()
        .flat_map(|t| {
            t.results_by_partition.iter().map(|p| {
                (
                    t.name.0.to_string(),
                    p.partition_index,
                    p.partition_error_code,
                )
            })
        })
        .collect()
}

fn end(c: &mut Raw, version: i16, id: &str, pid: i64, epoch: i16, commit: bool) -> i16 {
    let r: EndTxnResponse = c.request(
        ApiKey::EndTxn,
        version,
        &EndTxnRequest::default()
            .with_transactional_id(TransactionalId(s(id)))
            .with_producer_id(ProducerId(pid))
            .with_producer_epoch(epoch)
            .with_committed(commit),
    );
    r.error_code
}

/// Produces a batch with acks=-1; returns (error, base offset).
fn produce(c: &mut Raw, topic: &str, partition: i32, records: bytes::Bytes) -> (i16, i64) {
    let r: ProduceResponse = c.request(
        ApiKey::Produce,
        9,
        &kafka::produce(topic, partition, -1, records),
    );
    let p = &r.responses[0].partition_responses[0];
    (p.error_code, p.base_offset)
}

/// (latest offset) for read_uncommitted (0) or read_committed (1).
fn latest(c: &mut Raw, topic: &str, partition: i32, isolation: i8) -> i64 {
    let r: ListOffsetsResponse = c.request(
        ApiKey::ListOffsets,
        7,
        &kafka::list_offsets(topic, partition, -1).with_isolation_level(isolation),
    );
    let p = &r.topics[0].partitions[0];
    assert_eq!(p.error_code, 0);
    p.offset
}

/// A read_committed fetch from `offset`: (last stable offset, aborted (pid, first offset),
/// batch base offsets).
fn fetch_committed(c: &mut Raw, topic: &str, offset: i64) -> (i64, Vec<(i64, i64)>, Vec<i64>) {
    let r: FetchResponse = c.request(
        ApiKey::Fetch,
        11,
        &kafka::fetch(topic, 0, offset, 0, 1 << 20).with_isolation_level(1),
    );
    let p = &r.responses[0].partitions[0];
    assert_eq!(p.error_code, 0, "{p:?}");
    let aborted = p
        .aborted_transactions
        .as_ref()
        .expect("read_committed fetches list aborted transactions")
        .iter()
        .map(|a| (a.producer_id.0, a.first_offset))
        .collect();
    let mut bases = Vec::new();
    let mut records = p.records.clone().unwrap_or_default();
    if !records.is_empty() {
        for set in kafka_protocol::records::RecordBatchDecoder::decode_all(&mut records).unwrap() {
            if let Some(first) = set.records.first() {
                bases.push(first.offset);
            }
        }
    }
    (p.last_stable_offset, aborted, bases)
}

fn describe(c: &mut Raw, id: &str) -> describe_transactions_response::TransactionState {
    let r: DescribeTransactionsResponse = c.request(
        ApiKey::DescribeTransactions,
        0,
        &DescribeTransactionsRequest::default()
            .with_transactional_ids(vec![TransactionalId(s(id))]),
    );
    r.transaction_states[0].clone()
}

fn producers(c: &mut Raw, topic: &str) -> Vec<describe_producers_response::ProducerState> {
    let r: DescribeProducersResponse = c.request(
        ApiKey::DescribeProducers,
        0,
        &DescribeProducersRequest::default().with_topics(vec![TopicRequest::default()
            .with_name(name(topic))
            .with_partition_indexes(vec![0])]),
    );
    r.topics[0].partitions[0].active_producers.clone()
}

#[test]
fn transaction_lifecycle_over_the_wire() {
    let dir = tempfile::tempdir().unwrap();
    let broker = Spool::start(dir.path(), &[]);
    let mut c = Raw::connect(&broker.addr);
    create(&mut c, "t", 2);

    let found: FindCoordinatorResponse = c.request(
        ApiKey::FindCoordinator,
        3,
        &FindCoordinatorRequest::default()
            .with_key(s("tx"))
            .with_key_type(1),
    );
    assert_eq!((found.error_code, found.port), (0, broker.port() as i32));

    let too_long = init(&mut c, "tx", 3_600_000);
    assert_eq!(too_long.error_code, INVALID_TRANSACTION_TIMEOUT);
    let first = init(&mut c, "tx", 60_000);
    assert_eq!(first.error_code, 0);
    let (pid, epoch) = (first.producer_id.0, first.producer_epoch);
    assert!(pid >= 0);

    // KIP-890: a transactional write to a partition not added to the transaction is refused.
    let (e, _) = produce(
        &mut c,
        "t",
        0,
        kafka::txn_batch(&["early"], (pid, epoch, 0)),
    );
    assert_eq!(e, INVALID_TXN_STATE);

    let unknown = add(&mut c, "tx", pid, epoch, &[("t", 0), ("nope", 0)]);
    assert!(unknown.contains(&("nope".into(), 0, UNKNOWN_TOPIC_OR_PARTITION)));
    assert!(unknown.contains(&("t".into(), 0, OPERATION_NOT_ATTEMPTED)));
    assert_eq!(
        describe(&mut c, "tx").transaction_state.to_string(),
        "Empty"
    );

    assert_eq!(
        produce(&mut c, "t", 0, kafka::batch(&["p0"], kafka::now_ms())),
        (0, 0)
    );
    let added = add(&mut c, "tx", pid, epoch, &[("t", 0), ("t", 1)]);
    assert!(added.iter().all(|r| r.2 == 0), "{added:?}");
    assert_eq!(
        produce(
            &mut c,
            "t",
            0,
            kafka::txn_batch(&["x1", "x2"], (pid, epoch, 0))
        ),
        (0, 1)
    );
    assert_eq!(
        produce(&mut c, "t", 0, kafka::batch(&["p1"], kafka::now_ms())),
        (0, 3)
    );

    // The open transaction holds the last stable offset at its first record.
    assert_eq!(latest(&mut c, "t", 0, 0), 4);
    assert_eq!(latest(&mut c, "t", 0, 1), 1);
    let (lso, aborted, bases) = fetch_committed(&mut c, "t", 0);
    assert_eq!((lso, aborted, bases), (1, vec![], vec![0]));
    let open = producers(&mut c, "t");
    let mine = open.iter().find(|p| p.producer_id.0 == pid).unwrap();
    assert_eq!(mine.current_txn_start_offset, 1);
    let d = describe(&mut c, "tx");
    assert_eq!(d.transaction_state.to_string(), "Ongoing");
    assert_eq!(d.topics.len(), 1);
    assert_eq!(d.topics[0].partitions, vec![0, 1]);
    let listed: ListTransactionsResponse = c.request(
        ApiKey::ListTransactions,
        1,
        &ListTransactionsRequest::default()
            .with_state_filters(vec![s("Ongoing"), s("NoSuchState")])
            .with_duration_filter(-1),
    );
    assert_eq!(listed.transaction_states.len(), 1);
    assert_eq!(listed.unknown_state_filters, vec![s("NoSuchState")]);

    // Abort: a marker at 4 closes the transaction; read_committed lists it as aborted.
    assert_eq!(end(&mut c, 3, "tx", pid, epoch, false), 0);
    let (lso, aborted, bases) = fetch_committed(&mut c, "t", 0);
    assert_eq!(lso, 5);
    assert_eq!(aborted, vec![(pid, 1)]);
    assert_eq!(bases, vec![0, 1, 3, 4], "data and the marker are returned");
    assert_eq!(
        latest(&mut c, "t", 1, 1),
        1,
        "an empty partition got its marker too"
    );

    // A second transaction commits; retrying the commit is fine, switching to abort is not.
    add(&mut c, "tx", pid, epoch, &[("t", 0)]);
    assert_eq!(
        produce(&mut c, "t", 0, kafka::txn_batch(&["y1"], (pid, epoch, 2))),
        (0, 5)
    );
    assert_eq!(end(&mut c, 3, "tx", pid, epoch, true), 0);
    assert_eq!(end(&mut c, 3, "tx", pid, epoch, true), 0);
    assert_eq!(end(&mut c, 3, "tx", pid, epoch, false), INVALID_TXN_STATE);
    let (lso, aborted, _) = fetch_committed(&mut c, "t", 5);
    assert_eq!((lso, aborted), (7, vec![]));
    assert_eq!(
        describe(&mut c, "tx").transaction_state.to_string(),
        "CompleteCommit"
    );

    // A new producer with the same id bumps the epoch; the old one is fenced everywhere.
    let second = init(&mut c, "tx", 60_000);
    assert_eq!(
        (second.producer_id.0, second.producer_epoch),
        (pid, epoch + 1)
    );
    assert_eq!(end(&mut c, 3, "tx", pid, epoch, true), PRODUCER_FENCED);
    assert_eq!(
        end(&mut c, 1, "tx", pid, epoch, true),
        INVALID_PRODUCER_EPOCH
    );
    assert_eq!(
        add(&mut c, "tx", pid, epoch, &[("t", 0)])[0].2,
        PRODUCER_FENCED
    );
    let (e, _) = produce(
        &mut c,
        "t",
        1,
        kafka::txn_batch(&["zombie"], (pid, epoch, 9)),
    );
    assert_eq!(e, INVALID_PRODUCER_EPOCH);
    assert_eq!(
        describe(&mut c, "nobody").error_code,
        TRANSACTIONAL_ID_NOT_FOUND
    );
}

#[test]
fn timed_out_transaction_is_aborted_after_a_sigkill() {
    let dir = tempfile::tempdir().unwrap();
    let settings = [
        "--set",
        "transaction_abort_timed_out_transaction_cleanup_interval_ms=200",
    ];
    let mut broker = Spool::start(dir.path(), &settings);
    let mut c = Raw::connect(&broker.addr);
    create(&mut c, "t", 1);
    let r = init(&mut c, "slow", 4_000);
    let (pid, epoch) = (r.producer_id.0, r.producer_epoch);
    add(&mut c, "slow", pid, epoch, &[("t", 0)]);
    assert_eq!(
        produce(&mut c, "t", 0, kafka::batch(&["before"], kafka::now_ms())),
        (0, 0)
    );
    assert_eq!(
        produce(
            &mut c,
            "t",
            0,
            kafka::txn_batch(&["a", "b", "c"], (pid, epoch, 0))
        ),
        (0, 1)
    );
    assert_eq!(
        produce(&mut c, "t", 0, kafka::batch(&["after"], kafka::now_ms())),
        (0, 4)
    );
    assert_eq!(latest(&mut c, "t", 0, 1), 1);

    broker.kill9();
    broker.restart();
    let mut c = Raw::connect(&broker.addr);
    // The open transaction survived the crash: records 1..4 stay undecided until the timeout.
    let describe_now = describe(&mut c, "slow");
    if describe_now.transaction_state.to_string() == "Ongoing" {
        assert_eq!(latest(&mut c, "t", 0, 1), 1);
    }
    let aborted = wait_for(Duration::from_secs(30), || {
        let lso = latest(&mut c, "t", 0, 1);
        (lso == 6).then_some(lso)
    });
    assert_eq!(aborted, Some(6), "{}", broker.log_tail());
    let (_, list, bases) = fetch_committed(&mut c, "t", 0);
    assert_eq!(list, vec![(pid, 1)]);
    assert_eq!(bases, vec![0, 1, 4, 5]);
    // The marker (and so the last stable offset) is written before the coordinator records
    // CompleteAbort, so the state is polled for rather than read once.
    let d = wait_for(Duration::from_secs(10), || {
        let d = describe(&mut c, "slow");
        (d.transaction_state.to_string() == "CompleteAbort").then_some(d)
    })
    .unwrap_or_else(|| describe(&mut c, "slow"));
    assert_eq!(d.transaction_state.to_string(), "CompleteAbort");
    assert_eq!(
        d.producer_epoch,
        epoch + 1,
        "the timed-out producer is fenced"
    );
    assert_eq!(end(&mut c, 3, "slow", pid, epoch, true), PRODUCER_FENCED);
}

#[test]
fn txn_tools_list_describe_and_abort_a_hanging_transaction() {
    let dir = tempfile::tempdir().unwrap();
    let broker = Spool::start(dir.path(), &[]);
    let a = broker.addr.as_str();
    let mut c = Raw::connect(a);
    create(&mut c, "h", 1);
    let r = init(&mut c, "hang", 600_000);
    let (pid, epoch) = (r.producer_id.0, r.producer_epoch);
    add(&mut c, "hang", pid, epoch, &[("h", 0)]);
    assert_eq!(
        produce(&mut c, "h", 0, kafka::batch(&["x"], kafka::now_ms())),
        (0, 0)
    );
    assert_eq!(
        produce(
            &mut c,
            "h",
            0,
            kafka::txn_batch(&["stuck"], (pid, epoch, 0))
        ),
        (0, 1)
    );

    let list = spool(&["txn", "list", "--bootstrap-server", a, "--output", "json"]).ok();
    assert_eq!(
        list.json(),
        serde_json::json!([{"transactional_id": "hang", "producer_id": pid, "state": "Ongoing"}])
    );
    let text = spool(&[
        "txn",
        "describe",
        "--bootstrap-server",
        a,
        "--transactional-id",
        "hang",
    ])
    .ok()
    .stdout;
    assert!(text.contains("Ongoing") && text.contains("h-0"), "{text}");
    let missing = spool(&[
        "txn",
        "describe",
        "--bootstrap-server",
        a,
        "--transactional-id",
        "nope",
    ])
    .failed();
    assert!(missing.contains("TransactionalIdNotFound"), "{missing}");
    let shown = spool(&[
        "txn",
        "producers",
        "--bootstrap-server",
        a,
        "--topic",
        "h",
        "--partition",
        "0",
        "--output",
        "json",
    ])
    .ok()
    .json();
    assert_eq!(shown[0]["current_transaction_start_offset"], 1);
    let none = spool(&[
        "txn",
        "abort",
        "--bootstrap-server",
        a,
        "--topic",
        "h",
        "--partition",
        "0",
        "--start-offset",
        "0",
    ])
    .failed();
    assert!(
        none.contains("no producer has a transaction starting at offset 0"),
        "{none}"
    );

    assert_eq!(latest(&mut c, "h", 0, 1), 1);
    let aborted = spool(&[
        "txn",
        "abort",
        "--bootstrap-server",
        a,
        "--topic",
        "h",
        "--partition",
        "0",
        "--start-offset",
        "1",
    ])
    .ok();
    assert!(
        aborted.stdout.contains(&format!("producer {pid}")),
        "{}",
        aborted.stdout
    );
    assert_eq!(
        latest(&mut c, "h", 0, 1),
        3,
        "the marker at 2 ends the transaction"
    );
    let (_, list, _) = fetch_committed(&mut c, "h", 0);
    assert_eq!(list, vec![(pid, 1)]);
}

fn add_offsets(c: &mut Raw, id: &str, pid: i64, epoch: i16, group: &str) -> i16 {
    let r: AddOffsetsToTxnResponse = c.request(
        ApiKey::AddOffsetsToTxn,
        3,
        &AddOffsetsToTxnRequest::default()
            .with_transactional_id(TransactionalId(s(id)))
            .with_producer_id(ProducerId(pid))
            .with_producer_epoch(epoch)
            .with_group_id(GroupId(s(group))),
    );
    r.error_code
}

fn txn_commit_offset(c: &mut Raw, id: &str, pid: i64, epoch: i16, group: &str, offset: i64) -> i16 {
    use kafka_protocol::messages::txn_offset_commit_request::*;
    let r: TxnOffsetCommitResponse = c.request(
        ApiKey::TxnOffsetCommit,
        3,
        &TxnOffsetCommitRequest::default()
            .with_transactional_id(TransactionalId(s(id)))
            .with_group_id(GroupId(s(group)))
            .with_producer_id(ProducerId(pid))
            .with_producer_epoch(epoch)
            .with_generation_id(-1)
            .with_member_id(s(""))
            .with_topics(vec![TxnOffsetCommitRequestTopic::default()
                .with_name(name("in"))
                .with_partitions(vec![TxnOffsetCommitRequestPartition::default()
                    .with_partition_index(0)
                    .with_committed_offset(offset)
                    .with_committed_leader_epoch(-1)])]),
    );
    r.topics[0].partitions[0].error_code
}

/// The group's committed offset of in-0 with require_stable: (error, offset).
fn stable_offset(c: &mut Raw, group: &str) -> (i16, i64) {
    use kafka_protocol::messages::offset_fetch_request::OffsetFetchRequestTopic;
    let r: OffsetFetchResponse = c.request(
        ApiKey::OffsetFetch,
        7,
        &OffsetFetchRequest::default()
            .with_group_id(GroupId(s(group)))
            .with_require_stable(true)
            .with_topics(Some(vec![OffsetFetchRequestTopic::default()
                .with_name(name("in"))
                .with_partition_indexes(vec![0])])),
    );
    let p = &r.topics[0].partitions[0];
    (p.error_code, p.committed_offset)
}

#[test]
fn transactional_offsets_apply_on_commit_only_and_survive_a_sigkill() {
    const UNSTABLE_OFFSET_COMMIT: i16 = 88;
    let dir = tempfile::tempdir().unwrap();
    let mut broker = Spool::start(dir.path(), &[]);
    let mut c = Raw::connect(&broker.addr);
    create(&mut c, "in", 1);
    let r = init(&mut c, "copier", 60_000);
    let (pid, epoch) = (r.producer_id.0, r.producer_epoch);

    // Offsets outside a transaction that holds the group's offsets partition are refused.
    assert_eq!(
        txn_commit_offset(&mut c, "copier", pid, epoch, "g", 5),
        INVALID_TXN_STATE
    );
    // Aborted: never visible.
    assert_eq!(add_offsets(&mut c, "copier", pid, epoch, "g"), 0);
    assert_eq!(txn_commit_offset(&mut c, "copier", pid, epoch, "g", 5), 0);
    assert_eq!(stable_offset(&mut c, "g").0, UNSTABLE_OFFSET_COMMIT);
    assert_eq!(end(&mut c, 3, "copier", pid, epoch, false), 0);
    assert_eq!(stable_offset(&mut c, "g"), (0, -1));
    // Committed: visible.
    assert_eq!(add_offsets(&mut c, "copier", pid, epoch, "g"), 0);
    assert_eq!(txn_commit_offset(&mut c, "copier", pid, epoch, "g", 7), 0);
    assert_eq!(end(&mut c, 3, "copier", pid, epoch, true), 0);
    assert_eq!(stable_offset(&mut c, "g"), (0, 7));
    // Left open across a crash: still pending after the restart, applied by the commit.
    assert_eq!(add_offsets(&mut c, "copier", pid, epoch, "g"), 0);
    assert_eq!(txn_commit_offset(&mut c, "copier", pid, epoch, "g", 9), 0);
    broker.kill9();
    broker.restart();
    let mut c = Raw::connect(&broker.addr);
    assert_eq!(stable_offset(&mut c, "g").0, UNSTABLE_OFFSET_COMMIT);
    assert_eq!(end(&mut c, 3, "copier", pid, epoch, true), 0);
    assert_eq!(stable_offset(&mut c, "g"), (0, 9));
    broker.kill9();
    broker.restart();
    let mut c = Raw::connect(&broker.addr);
    assert_eq!(stable_offset(&mut c, "g"), (0, 9), "{}", broker.log_tail());
}

/// Java's `String.hashCode`, Kafka's `Utils.abs`, modulo the partition count.
fn state_partition(id: &str, partitions: i32) -> i32 {
    let h = id
        .encode_utf16()
        .fold(0i32, |h, c| h.wrapping_mul(31).wrapping_add(c as i32));
    (if h == i32::MIN { 0 } else { h.abs() }) % partitions
}

/// Appends a TransactionLogValue v0 record for `id` to the end of its state partition's first
/// segment, as a crash right after the coordinator wrote it would leave the disk.
fn forge_state(
    data_dir: &std::path::Path,
    id: &str,
    pid: i64,
    epoch: i16,
    status: i8,
    topic: &str,
) {
    use bytes::BufMut;
    let dir = data_dir.join(format!("__transaction_state-{}", state_partition(id, 50)));
    let path = dir.join(format!("{:020}.log", 0));
    let mut existing = bytes::Bytes::from(std::fs::read(&path).unwrap());
    let next = kafka_protocol::records::RecordBatchDecoder::decode_all(&mut existing)
        .unwrap()
        .iter()
        .flat_map(|set| set.records.iter().map(|r| r.offset + 1))
        .max()
        .unwrap_or(0);
    let mut key = bytes::BytesMut::new();
    key.put_i16(0);
    key.put_i16(id.len() as i16);
    key.put_slice(id.as_bytes());
    let now = kafka::now_ms();
    let mut value = bytes::BytesMut::new();
    value.put_i16(0);
    value.put_i64(pid);
    value.put_i16(epoch);
    value.put_i32(60_000);
    value.put_i8(status);
    value.put_i32(1);
    value.put_i16(topic.len() as i16);
    value.put_slice(topic.as_bytes());
    value.put_i32(1);
    value.put_i32(0);
    value.put_i64(now);
    value.put_i64(now);
    let record = kafka_protocol::records::Record {
        transactional: false,
        control: false,
        partition_leader_epoch: 0,
        producer_id: -1,
        producer_epoch: -1,
        timestamp_type: kafka_protocol::records::TimestampType::Creation,
        offset: next,
        sequence: -1,
        timestamp: now,
        key: Some(key.freeze()),
        value: Some(value.freeze()),
        headers: Default::default(),
        delete_horizon: false,
    };
    let mut batch = bytes::BytesMut::new();
    kafka_protocol::records::RecordBatchEncoder::encode(
        &mut batch,
        &[record],
        &kafka_protocol::records::RecordEncodeOptions {
            version: 2,
            compression: kafka_protocol::records::Compression::None,
        },
    )
    .unwrap();
    let mut f = std::fs::OpenOptions::new()
        .append(true)
        .open(&path)
        .unwrap();
    std::io::Write::write_all(&mut f, &batch).unwrap();
}

#[test]
fn prepared_transactions_are_completed_after_a_crash() {
    const PREPARE_COMMIT: i8 = 2;
    const PREPARE_ABORT: i8 = 3;
    let dir = tempfile::tempdir().unwrap();
    let mut broker = Spool::start(dir.path(), &[]);
    let mut c = Raw::connect(&broker.addr);
    // Clients may not write the coordinators' internal topics.
    create(&mut c, "t-commit", 1);
    create(&mut c, "t-abort", 1);
    let mut open = Vec::new();
    for (id, topic) in [("pc", "t-commit"), ("pa", "t-abort")] {
        let r = init(&mut c, id, 60_000);
        let (pid, epoch) = (r.producer_id.0, r.producer_epoch);
        add(&mut c, id, pid, epoch, &[(topic, 0)]);
        assert_eq!(
            produce(
                &mut c,
                topic,
                0,
                kafka::txn_batch(&["a", "b"], (pid, epoch, 0))
            ),
            (0, 0)
        );
        assert_eq!(latest(&mut c, topic, 0, 1), 0);
        open.push((id, topic, pid, epoch));
    }
    let (e, _) = produce(
        &mut c,
        "__transaction_state",
        0,
        kafka::batch(&["x"], kafka::now_ms()),
    );
    assert_eq!(e, 17, "INVALID_TOPIC_EXCEPTION");

    // The crash lands after each decision reached the state log, before any marker.
    broker.kill9();
    for (id, topic, pid, epoch) in &open {
        let status = if *id == "pc" {
            PREPARE_COMMIT
        } else {
            PREPARE_ABORT
        };
        forge_state(&broker.data_dir, id, *pid, *epoch, status, topic);
    }
    broker.restart();
    let mut c = Raw::connect(&broker.addr);
    assert_eq!(
        describe(&mut c, "pc").transaction_state.to_string(),
        "CompleteCommit",
        "{}",
        broker.log_tail()
    );
    assert_eq!(
        describe(&mut c, "pa").transaction_state.to_string(),
        "CompleteAbort"
    );
    assert_eq!(
        latest(&mut c, "t-commit", 0, 1),
        3,
        "records and commit marker are stable"
    );
    assert_eq!(fetch_committed(&mut c, "t-commit", 0).1, vec![]);
    assert_eq!(latest(&mut c, "t-abort", 0, 1), 3);
    let aborted_pid = open[1].2;
    assert_eq!(
        fetch_committed(&mut c, "t-abort", 0).1,
        vec![(aborted_pid, 0)]
    );
}
