'use strict'

// kafkajs transactions against spool: consume-transform-produce with
// exactly-once semantics, and producer fencing.
//
// Copy test: 20,000 keyed records are produced to `input` (idempotent
// producer), read back into memory with a read_committed Fetch, and copied to
// `output` (same partition, value prefixed) by a transactional producer in
// transactions of 510..987 records. Each transaction sends its records
// (header x-txn = transaction number, x-src = input partition:offset),
// TxnOffsetCommit-s the next input offsets for the copier's group
// (txn.sendOffsets) and commits. Every 5th transaction is aborted on purpose
// and its exact input range is copied again by the next one. Transaction 13
// is abandoned instead: the copier "crashes" mid-transaction (disconnects
// without EndTxn), a new incarnation with the same transactional.id starts
// (its InitProducerId must abort the dangling transaction) and resumes at the
// group's committed offsets (OffsetFetch).
//
// Checked afterwards:
//  - a kafkajs read_committed consumer (fresh group) of `output` sees every
//    input record exactly once, in input order, at the offsets the committed
//    transactions wrote, and nothing from an aborted transaction;
//  - a kafkajs read_uncommitted consumer sees every record of every
//    transaction, the aborted ones included;
//  - the raw log of `output` (Fetch, read_uncommitted) is exactly: per
//    transaction that touched the partition, its records, then one control
//    record (COMMIT or ABORT); a read_committed Fetch lists exactly the
//    aborted transactions (producer id, first offset) and reports
//    last stable offset == high watermark once everything has ended;
//  - the copier group's committed offsets for `input` equal the input end
//    offsets, and after every aborted/abandoned transaction they are still the
//    previous committed transaction's.
//
// Fencing test: two kafkajs producers with one transactional.id; the second
// one's InitProducerId fences the first and aborts its open transaction; the
// first one's Produce, AddPartitionsToTxn and EndTxn then fail with
// INVALID_PRODUCER_EPOCH (or PRODUCER_FENCED).
//
// kafkajs detail: with `idempotent: true` producer.connect() sends a
// non-transactional InitProducerId; the transactional one (with the
// transactional.id, via FindCoordinator key type 1) is sent by the first
// producer.transaction(). That call is the "initialisation" that fences.

const { describe, test, before, after } = require('node:test')
const assert = require('assert/strict')
const { CompressionTypes } = require('kafkajs')
const ISOLATION_LEVEL = require('kafkajs/src/protocol/isolationLevel')

const { fetchAllRecords } = require('./lib/fetch')
const { makeRecord, recordingPartitioner, produceAll, verifyFetched } = require('./lib/workload')
const { createKafka, withBrokerLogs, startBroker, stopBroker } = require('./lib/harness')
const { sleep } = require('./lib/spool')

const NUM_PARTITIONS = 3
const PARTITIONS = [...Array(NUM_PARTITIONS).keys()]
const NUM_RECORDS = Number(process.env.COMPAT_TXN_RECORDS || 20000)
const INPUT_TOPIC = 'input'
const OUTPUT_TOPIC = 'output'
const FENCE_TOPIC = 'fence-output'
const COPIER_GROUP = 'txn-copier'
const COPIER_TXN_ID = 'spool-compat-copier'
const FENCE_TXN_ID = 'spool-compat-fence'
const ABORT_EVERY = 5 // transactions 5, 10, 15, ... are aborted on purpose
const ABANDON_AT = 13 // transaction 13 is left open by a "crashed" copier
const PRODUCE_BATCH = 500 // input records per produce request
const SEND_CHUNK = 200 // output records per txn.send
const MAX_TXNS = 200 // bound on the copy loop (about 35 are needed)
const POLL_MS = 25
const OFFSETS_WAIT_MS = 10000
const COPY_TEST_TIMEOUT_MS = 240000
const FENCE_TEST_TIMEOUT_MS = 90000
const MARKER = { ABORT: 0, COMMIT: 1 }

// the verifying consumers join fresh groups: keep the initial join short
const BROKER_SETTINGS = { group_initial_rebalance_delay_ms: 500 }

const CONSUMER_CONFIG = {
  sessionTimeout: 10000,
  rebalanceTimeout: 20000,
  heartbeatInterval: 500,
  maxWaitTimeInMs: 200,
  retry: { retries: 5, initialRetryTime: 100, maxRetryTime: 1000 },
}

// records of one input partition per transaction: 170..329, so 510..987 per
// transaction while no partition is exhausted
const chunkFor = n => 170 + ((n * 53) % 160)

// the "transform" of consume-transform-produce
const transform = value => Buffer.concat([Buffer.from('copied:'), value])

// ---------------------------------------------------------------------------
// helpers

async function waitUntil(what, deadline, fn, describeState = () => '') {
  for (;;) {
    const value = await fn()
    if (value) return value
    if (Date.now() > deadline) {
      throw new Error(`timed out waiting for ${what}; state: ${describeState()}`)
    }
    await sleep(POLL_MS)
  }
}

/** Resolve with `promise`, or reject once `ms` passed (the promise keeps running). */
function within(ms, what, promise) {
  let timer
  const timeout = new Promise((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what} did not settle within ${ms} ms`)), ms)
  })
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer))
}

const transactionalProducer = (kafka, transactionalId) =>
  kafka.producer({
    transactionalId,
    idempotent: true,
    maxInFlightRequests: 1,
    allowAutoTopicCreation: false,
    // the idempotent producer insists on retries; bounded (the test deadlines bound it too)
    retry: { retries: 10, initialRetryTime: 100, maxRetryTime: 2000 },
  })

async function createTopics(admin, topics) {
  const created = await admin.createTopics({
    topics: topics.map(topic => ({ topic, numPartitions: NUM_PARTITIONS, replicationFactor: 1 })),
    waitForLeaders: true,
    timeout: 10000,
  })
  assert.equal(created, true, `createTopics ${topics}`)
}

/** partition -> end offset (kafkajs' admin asks ListOffsets with read_committed: the last stable offset). */
async function endOffsets(admin, topic) {
  const offsets = await admin.fetchTopicOffsets(topic)
  return Object.fromEntries(offsets.map(o => [o.partition, Number(o.high)]))
}

/** partition -> committed offset of `groupId` for `topic` (-1: none). */
async function committedOffsets(admin, groupId, topic) {
  const result = await admin.fetchOffsets({ groupId, topics: [topic] })
  const t = result.find(r => r.topic === topic)
  assert.ok(t, `fetchOffsets returned no entry for ${topic}: ${JSON.stringify(result)}`)
  return Object.fromEntries(t.partitions.map(p => [p.partition, Number(p.offset)]))
}

/**
 * Poll OffsetFetch until the group's committed offsets equal `want`. A
 * committed offset beyond `want` fails at once: it can only come from an
 * aborted, abandoned or still pending transaction.
 */
async function expectCommitted(admin, groupId, topic, want, deadline, label) {
  const until = Math.min(deadline, Date.now() + OFFSETS_WAIT_MS)
  let got = null
  await waitUntil(
    `committed offsets ${JSON.stringify(want)} ${label}`,
    until,
    async () => {
      got = await committedOffsets(admin, groupId, topic)
      const beyond = PARTITIONS.filter(p => got[p] > want[p])
      if (beyond.length > 0) {
        assert.fail(
          `${label}: committed offsets ${JSON.stringify(got)} are beyond the last committed transaction's ` +
            `${JSON.stringify(want)} (partitions ${beyond}): offsets of an aborted or unfinished transaction are visible`
        )
      }
      return PARTITIONS.every(p => got[p] === want[p])
    },
    () => JSON.stringify(got)
  )
}

/** The first KafkaJSProtocolError in e's cause chain (kafkajs wraps errors in retriers). */
function protocolErrorOf(e) {
  for (let cur = e, depth = 0; cur && depth < 6; cur = cur.cause || cur.originalError, depth++) {
    if (cur.name === 'KafkaJSProtocolError' || (cur.type && cur.code !== undefined)) return cur
  }
  return null
}

const describeError = e => {
  if (!e) return 'no error'
  const chain = []
  for (let cur = e, depth = 0; cur && depth < 6; cur = cur.cause || cur.originalError, depth++) {
    chain.push(`${cur.name}${cur.type ? `[${cur.type}/${cur.code}]` : ''}: ${cur.message}`)
  }
  return chain.join(' <- ')
}

/** Run fn (bounded); return what it threw, or null if it succeeded. */
async function rejectionOf(what, fn, ms = 30000) {
  try {
    await within(ms, what, fn())
    return null
  } catch (e) {
    return e
  }
}

/**
 * The producer was fenced. kafkajs 2.2.4 sends AddPartitionsToTxn/EndTxn
 * v0-v1 and Produce <= v7; Kafka answers a stale epoch there with
 * INVALID_PRODUCER_EPOCH (47). kafkajs does not know PRODUCER_FENCED (90): a
 * broker sending 90 shows up as KAFKAJS_UNKNOWN_ERROR_CODE and fails here.
 */
function assertFenced(e, what) {
  assert.ok(e, `${what}: should have failed, the producer was fenced`)
  const pe = protocolErrorOf(e)
  assert.ok(pe, `${what}: expected a KafkaJSProtocolError, got ${describeError(e)}`)
  assert.ok(
    ['PRODUCER_FENCED', 'INVALID_PRODUCER_EPOCH'].includes(pe.type),
    `${what}: expected PRODUCER_FENCED or INVALID_PRODUCER_EPOCH, got ${describeError(e)}`
  )
  return pe.type
}

/**
 * Consume `topic` from the beginning with a kafkajs consumer in a fresh
 * group until it has moved past offset ends[p]-1 of every partition
 * (END_BATCH_PROCESS reports the last offset of each fetched batch, control
 * records and filtered aborted records included). Returns partition -> the
 * delivered messages by offset (a redelivered offset counts once).
 */
async function consumeAll({ kafka, topic, groupId, readUncommitted, ends, deadline, label }) {
  const consumer = kafka.consumer({ groupId, readUncommitted, ...CONSUMER_CONFIG })
  const delivered = new Map(PARTITIONS.map(p => [p, new Map()]))
  const reached = new Map(PARTITIONS.map(p => [p, -1]))
  const crashes = []
  let redelivered = 0
  consumer.on(consumer.events.END_BATCH_PROCESS, e => {
    const p = Number(e.payload.partition)
    const last = Number(e.payload.lastOffset)
    if (reached.has(p) && last > reached.get(p)) reached.set(p, last)
  })
  consumer.on(consumer.events.CRASH, e =>
    crashes.push(`${e.payload.error && e.payload.error.message} (restart: ${e.payload.restart})`)
  )
  const state = () =>
    JSON.stringify({
      reached: Object.fromEntries(reached),
      ends,
      delivered: PARTITIONS.map(p => delivered.get(p).size),
      redelivered,
      crashes,
    })
  try {
    await consumer.connect()
    await consumer.subscribe({ topics: [topic], fromBeginning: true })
    await consumer.run({
      autoCommit: false,
      eachBatch: async ({ batch }) => {
        const byOffset = delivered.get(batch.partition)
        for (const m of batch.messages) {
          const offset = Number(m.offset)
          if (byOffset.has(offset)) {
            redelivered++
            continue
          }
          byOffset.set(offset, { offset, key: m.key.toString(), value: m.value, headers: m.headers })
        }
      },
    })
    await waitUntil(
      `${label}: the consumer to reach the end offsets of ${topic}`,
      deadline,
      () => {
        if (crashes.some(c => c.endsWith('(restart: false)'))) throw new Error(`${label}: consumer crashed: ${state()}`)
        return PARTITIONS.every(p => reached.get(p) >= ends[p] - 1)
      },
      state
    )
  } finally {
    await consumer.disconnect().catch(() => {})
  }
  const view = new Map(PARTITIONS.map(p => [p, [...delivered.get(p).values()].sort((a, b) => a.offset - b.offset)]))
  return { view, redelivered, crashes }
}

const header = (m, name) => {
  const v = m.headers && m.headers[name]
  return v === undefined ? undefined : Buffer.isBuffer(v) ? v.toString() : String(v)
}

/** Compare two lists of strings; report the first difference with context instead of a huge diff. */
function assertSameSequence(actual, expected, label) {
  const n = Math.min(actual.length, expected.length)
  let i = 0
  while (i < n && actual[i] === expected[i]) i++
  if (i === n && actual.length === expected.length) return
  const around = list => JSON.stringify(list.slice(Math.max(0, i - 2), i + 3))
  assert.fail(
    `${label}: ${actual.length} entries, expected ${expected.length}; first difference at index ${i}: ` +
      `got ${around(actual)}, expected ${around(expected)} (from index ${Math.max(0, i - 2)})`
  )
}

/** The raw log of a partition (data records and control records merged by offset) as strings. */
function rawLog(fetched, p) {
  const entries = [
    ...fetched.records.get(p).map(m => ({ offset: Number(m.offset), s: `d ${m.key.toString()} t${header(m, 'x-txn')}` })),
    ...fetched.controls.get(p).map(c => ({ offset: c.offset, s: `m ${c.type === MARKER.COMMIT ? 'commit' : c.type === MARKER.ABORT ? 'abort' : c.type}` })),
  ].sort((a, b) => a.offset - b.offset)
  entries.forEach((e, i) => assert.equal(e.offset, i, `partition ${p}: raw log offsets must be 0..n-1`))
  return entries.map(e => e.s)
}

// ---------------------------------------------------------------------------
// the copier

/** Per partition with something left: [from, to) of at most `size` records. */
function nextRanges(pos, ends, size) {
  const ranges = {}
  for (const p of PARTITIONS) {
    const to = Math.min(ends[p], pos[p] + size)
    if (to > pos[p]) ranges[p] = [pos[p], to]
  }
  return ranges
}

/** The output records of transaction n: input ranges, interleaved across partitions, order kept per partition. */
function outputMessages(input, ranges, n) {
  const lists = Object.entries(ranges).map(([p, [from, to]]) =>
    input
      .get(Number(p))
      .slice(from, to)
      .map(m => ({ partition: Number(p), m }))
  )
  const messages = []
  for (let i = 0; lists.some(l => i < l.length); i++) {
    for (const l of lists) {
      if (i >= l.length) continue
      const { partition, m } = l[i]
      messages.push({
        partition,
        key: m.key,
        value: transform(m.value),
        headers: {
          'x-txn': String(n),
          'x-src': `${partition}:${m.offset}`,
          'x-index': m.headers['x-index'],
        },
      })
    }
  }
  return messages
}

/**
 * Copy input -> output in transactions until every input record is in a
 * committed one. Returns the transactions: { n, outcome: 'commit' | 'abort'
 * | 'abandoned', ranges: {p: [from, to)}, records }.
 *
 * Also checks every produce response: base offsets continue where the
 * previous transaction's control record (one per partition it touched) ended.
 */
async function copyInput({ kafka, admin, input, ends, deadline, t }) {
  const txns = []
  const pos = Object.fromEntries(PARTITIONS.map(p => [p, 0]))
  const outEnd = Object.fromEntries(PARTITIONS.map(p => [p, 0])) // expected output log end
  const producers = []
  const newIncarnation = async () => {
    const producer = transactionalProducer(kafka, COPIER_TXN_ID)
    producers.push(producer)
    await producer.connect()
    return producer
  }
  let producer = await newIncarnation()
  let retry = null
  try {
    for (let n = 1; PARTITIONS.some(p => pos[p] < ends[p]); n++) {
      if (n > MAX_TXNS) throw new Error(`copy did not finish within ${MAX_TXNS} transactions: pos ${JSON.stringify(pos)}`)
      if (Date.now() > deadline) throw new Error(`copy did not finish before the deadline (transaction ${n}): pos ${JSON.stringify(pos)}`)
      const ranges = retry || nextRanges(pos, ends, chunkFor(n))
      retry = null
      const outcome = n === ABANDON_AT ? 'abandoned' : n % ABORT_EVERY === 0 ? 'abort' : 'commit'
      const messages = outputMessages(input, ranges, n)
      txns.push({ n, outcome, ranges, records: messages.length })

      const txn = await producer.transaction()
      for (let i = 0; i < messages.length; i += SEND_CHUNK) {
        const chunk = messages.slice(i, i + SEND_CHUNK)
        const metadata = await txn.send({ topic: OUTPUT_TOPIC, acks: -1, compression: CompressionTypes.None, messages: chunk })
        const perPartition = new Map()
        for (const m of chunk) perPartition.set(m.partition, (perPartition.get(m.partition) || 0) + 1)
        assert.deepEqual(
          metadata.map(e => e.partition).sort(),
          [...perPartition.keys()].sort(),
          `transaction ${n}: RecordMetadata partitions`
        )
        for (const e of metadata) {
          assert.equal(e.errorCode, 0, `transaction ${n}: errorCode of partition ${e.partition}`)
          assert.equal(
            Number(e.baseOffset),
            outEnd[e.partition],
            `transaction ${n}: baseOffset of output partition ${e.partition} (records so far plus one control record per earlier transaction on it)`
          )
          outEnd[e.partition] += perPartition.get(e.partition)
        }
      }
      // the next input offsets, for every input partition
      const next = Object.fromEntries(PARTITIONS.map(p => [p, ranges[p] ? ranges[p][1] : pos[p]]))
      await txn.sendOffsets({
        consumerGroupId: COPIER_GROUP,
        topics: [{ topic: INPUT_TOPIC, partitions: PARTITIONS.map(p => ({ partition: p, offset: String(next[p]) })) }],
      })
      for (const p of Object.keys(ranges)) outEnd[p] += 1 // the transaction's control record

      if (outcome === 'commit') {
        await txn.commit()
        assert.equal(txn.isActive(), false)
        Object.assign(pos, next)
        await expectCommitted(admin, COPIER_GROUP, INPUT_TOPIC, pos, deadline, `after committing transaction ${n}`)
      } else if (outcome === 'abort') {
        await txn.abort()
        assert.equal(txn.isActive(), false)
        retry = ranges // the same input range again, in the next transaction
        await expectCommitted(admin, COPIER_GROUP, INPUT_TOPIC, pos, deadline, `after aborting transaction ${n}`)
      } else {
        // crash: no EndTxn. The next incarnation's InitProducerId (sent by
        // its first transaction(); an empty transaction ends without EndTxn)
        // must abort the dangling transaction.
        await producer.disconnect()
        producer = await newIncarnation()
        const probe = await within(30000, 'InitProducerId of the new incarnation', producer.transaction())
        await probe.abort()
        // resume where the group's committed offsets say
        await expectCommitted(admin, COPIER_GROUP, INPUT_TOPIC, pos, deadline, `after abandoning transaction ${n}`)
        const resumed = await committedOffsets(admin, COPIER_GROUP, INPUT_TOPIC)
        Object.assign(pos, resumed)
        t.diagnostic(`transaction ${n} abandoned; the new incarnation resumes at ${JSON.stringify(resumed)}`)
      }
    }
  } finally {
    for (const p of producers) await p.disconnect().catch(() => {})
  }
  return { txns, outEnd }
}

/**
 * The expected output log per partition: per transaction touching it, its
 * data records then one control record; plus the first offset of each
 * aborted transaction there.
 */
function expectedOutput(txns, input) {
  const log = new Map(PARTITIONS.map(p => [p, []]))
  const aborted = new Map(PARTITIONS.map(p => [p, []])) // first offsets
  for (const tx of txns) {
    for (const [ps, [from, to]] of Object.entries(tx.ranges)) {
      const p = Number(ps)
      const l = log.get(p)
      if (tx.outcome !== 'commit') aborted.get(p).push(l.length)
      for (let o = from; o < to; o++) {
        l.push({ kind: 'data', offset: l.length, key: input.get(p)[o].key.toString(), txn: tx.n, src: o, committed: tx.outcome === 'commit' })
      }
      l.push({ kind: 'marker', offset: l.length, type: tx.outcome === 'commit' ? 'commit' : 'abort' })
    }
  }
  return { log, aborted }
}

// ---------------------------------------------------------------------------

describe('kafkajs transactions', { timeout: 10 * 60 * 1000 }, () => {
  let spool = null
  const cleanups = []

  before(async () => {
    spool = await startBroker({ settings: BROKER_SETTINGS })
  })

  after(async () => {
    for (const fn of cleanups.reverse()) await fn().catch(() => {})
    await stopBroker(spool)
  })

  test(
    `consume-transform-produce: ${NUM_RECORDS} records copied exactly once in transactions, aborted ones invisible to read_committed`,
    { timeout: COPY_TEST_TIMEOUT_MS },
    async t => {
      let admin = null
      const cleanup = async () => {
        if (admin) await admin.disconnect().catch(() => {})
      }
      cleanups.push(cleanup)
      await withBrokerLogs(t, spool, async () => {
        const deadline = Date.now() + COPY_TEST_TIMEOUT_MS - 10000
        const kafka = createKafka(spool, 'spool-compat-transactions')
        admin = kafka.admin()
        await admin.connect()
        await createTopics(admin, [INPUT_TOPIC, OUTPUT_TOPIC])

        // --- input: idempotent producer ----------------------------------
        const base = Date.now() - NUM_RECORDS
        const records = []
        for (let i = 0; i < NUM_RECORDS; i++) records.push(makeRecord('txn-in', i, base))
        const { createPartitioner, assigned } = recordingPartitioner()
        const inputProducer = kafka.producer({
          createPartitioner,
          allowAutoTopicCreation: false,
          idempotent: true,
          maxInFlightRequests: 1,
          retry: { retries: 10, initialRetryTime: 100, maxRetryTime: 2000 },
        })
        let produced
        await inputProducer.connect()
        try {
          produced = await produceAll({
            producer: inputProducer,
            assigned,
            topic: INPUT_TOPIC,
            records,
            batchSize: PRODUCE_BATCH,
            compression: CompressionTypes.None,
            numPartitions: NUM_PARTITIONS,
            deadline,
          })
        } finally {
          await inputProducer.disconnect().catch(() => {})
        }
        const ends = produced.counts
        assert.deepEqual(await endOffsets(admin, INPUT_TOPIC), ends, 'input end offsets == what the producer wrote')
        assert.ok(PARTITIONS.every(p => ends[p] > 0), `every input partition has records: ${JSON.stringify(ends)}`)

        // --- read the input into memory, read_committed -------------------
        const fetchedInput = await fetchAllRecords({
          brokers: spool.brokers,
          topic: INPUT_TOPIC,
          endOffsets: ends,
          isolationLevel: ISOLATION_LEVEL.READ_COMMITTED,
          timeoutMs: Math.max(5000, deadline - Date.now()),
        })
        verifyFetched({ records, placements: produced.placements, fetched: fetchedInput.records, counts: ends })
        for (const p of PARTITIONS) {
          assert.equal(fetchedInput.controls.get(p).length, 0, `input partition ${p} has no control records`)
          assert.ok(fetchedInput.batches.get(p).every(b => !b.inTransaction), `input partition ${p}: no transactional batches`)
          const h = fetchedInput.partitionHeaders.get(p)
          assert.equal(Number(h.lastStableOffset), ends[p], `input partition ${p}: last stable offset == high watermark without transactions`)
        }
        const input = fetchedInput.records

        // --- copy in transactions ------------------------------------------
        const started = Date.now()
        const { txns, outEnd } = await copyInput({ kafka, admin, input, ends, deadline, t })
        const copyMs = Date.now() - started
        const byOutcome = o => txns.filter(tx => tx.outcome === o)
        const committedTxns = byOutcome('commit')
        const abortedTxns = txns.filter(tx => tx.outcome !== 'commit')
        // (with the default 20,000 records: about 35 transactions)
        assert.equal(byOutcome('abort').length, Math.floor(txns.length / ABORT_EVERY), 'every 5th transaction aborted')
        assert.ok(byOutcome('abort').length >= 1, `no transaction was aborted: ${txns.length} in all`)
        assert.equal(byOutcome('abandoned').length, txns.length >= ABANDON_AT ? 1 : 0, 'one abandoned transaction')
        // the copier itself: committed ranges tile every input partition
        for (const p of PARTITIONS) {
          const ranges = committedTxns.filter(tx => tx.ranges[p]).map(tx => tx.ranges[p])
          let at = 0
          for (const [from, to] of ranges) {
            assert.equal(from, at, `committed ranges of input partition ${p} are contiguous`)
            at = to
          }
          assert.equal(at, ends[p], `committed ranges of input partition ${p} reach its end`)
        }
        // every aborted range was copied again by a committed transaction
        for (const tx of abortedTxns) {
          for (const [p, [from]] of Object.entries(tx.ranges)) {
            assert.ok(
              committedTxns.some(c => c.n > tx.n && c.ranges[p] && c.ranges[p][0] === from),
              `the input range of ${tx.outcome} transaction ${tx.n} (partition ${p} from ${from}) was copied again later`
            )
          }
        }
        const committedNumbers = new Set(committedTxns.map(tx => String(tx.n)))
        const abortedNumbers = new Set(abortedTxns.map(tx => String(tx.n)))

        const { log: expectedLog, aborted: expectedAborted } = expectedOutput(txns, input)
        const expectedEnds = Object.fromEntries(PARTITIONS.map(p => [p, expectedLog.get(p).length]))
        assert.deepEqual(outEnd, expectedEnds, 'test self-check: produce-time and post-hoc expected output ends agree')

        // --- committed offsets and output end offsets ---------------------
        assert.deepEqual(
          await committedOffsets(admin, COPIER_GROUP, INPUT_TOPIC),
          ends,
          "the copier group's committed offsets == the input end offsets"
        )
        assert.deepEqual(
          await endOffsets(admin, OUTPUT_TOPIC),
          expectedEnds,
          'output end offsets (ListOffsets read_committed: the last stable offset) == records + one control record per transaction and partition'
        )

        // --- the raw output log (Fetch) -----------------------------------
        const rawUncommitted = await fetchAllRecords({
          brokers: spool.brokers,
          topic: OUTPUT_TOPIC,
          endOffsets: expectedEnds,
          isolationLevel: ISOLATION_LEVEL.READ_UNCOMMITTED,
          timeoutMs: Math.max(5000, deadline - Date.now()),
        })
        const producerIds = new Set()
        for (const p of PARTITIONS) {
          assertSameSequence(
            rawLog(rawUncommitted, p),
            expectedLog.get(p).map(e => (e.kind === 'data' ? `d ${e.key} t${e.txn}` : `m ${e.type}`)),
            `output partition ${p}: raw log (records and control records)`
          )
          for (const b of rawUncommitted.batches.get(p)) {
            assert.equal(b.inTransaction, true, `output partition ${p}: batch at ${b.firstOffset} is transactional`)
            producerIds.add(String(b.producerId))
          }
          const h = rawUncommitted.partitionHeaders.get(p)
          assert.equal(Number(h.highWatermark), expectedEnds[p], `output partition ${p}: high watermark`)
        }

        const rawCommitted = await fetchAllRecords({
          brokers: spool.brokers,
          topic: OUTPUT_TOPIC,
          endOffsets: expectedEnds,
          isolationLevel: ISOLATION_LEVEL.READ_COMMITTED,
          timeoutMs: Math.max(5000, deadline - Date.now()),
        })
        for (const p of PARTITIONS) {
          const h = rawCommitted.partitionHeaders.get(p)
          assert.equal(Number(h.lastStableOffset), expectedEnds[p], `output partition ${p}: last stable offset == high watermark once every transaction ended`)
          const listed = rawCommitted.abortedTransactions.get(p)
          assert.deepEqual(
            listed.map(a => a.firstOffset).sort((a, b) => a - b),
            expectedAborted.get(p),
            `output partition ${p}: the read_committed Fetch lists exactly the aborted transactions (first offsets)`
          )
          const dataAt = new Map(rawCommitted.records.get(p).map(m => [Number(m.offset), m]))
          for (const a of listed) {
            const first = dataAt.get(a.firstOffset)
            assert.ok(first, `output partition ${p}: aborted transaction listed at ${a.firstOffset}, no record there`)
            assert.equal(a.producerId, String(first.batchContext.producerId), `output partition ${p}: producer id of the aborted transaction at ${a.firstOffset}`)
            assert.ok(abortedNumbers.has(header(first, 'x-txn')), `output partition ${p}: record at ${a.firstOffset} belongs to an aborted transaction`)
          }
        }

        // --- kafkajs consumers: read_committed and read_uncommitted -------
        const [committedRead, uncommittedRead] = await Promise.all([
          consumeAll({ kafka, topic: OUTPUT_TOPIC, groupId: 'verify-read-committed', readUncommitted: false, ends: expectedEnds, deadline, label: 'read_committed' }),
          consumeAll({ kafka, topic: OUTPUT_TOPIC, groupId: 'verify-read-uncommitted', readUncommitted: true, ends: expectedEnds, deadline, label: 'read_uncommitted' }),
        ])

        // read_committed: every input record exactly once, in input order,
        // at the offsets the committed transactions wrote; nothing aborted
        const seenKeys = new Set()
        let committedTotal = 0
        for (const p of PARTITIONS) {
          const got = committedRead.view.get(p)
          const leaked = got.filter(m => !committedNumbers.has(header(m, 'x-txn')))
          assert.deepEqual(
            leaked.slice(0, 5).map(m => `${m.offset}:${m.key}:t${header(m, 'x-txn')}`),
            [],
            `read_committed consumer, partition ${p}: records of aborted transactions (${leaked.length} in all)`
          )
          assertSameSequence(
            got.map(m => `${m.offset} ${m.key} t${header(m, 'x-txn')}`),
            expectedLog.get(p).filter(e => e.kind === 'data' && e.committed).map(e => `${e.offset} ${e.key} t${e.txn}`),
            `read_committed consumer, partition ${p}`
          )
          assert.equal(got.length, ends[p], `read_committed consumer, partition ${p}: one record per input record`)
          got.forEach((m, j) => {
            const src = input.get(p)[j]
            assert.equal(m.key, src.key.toString(), `read_committed partition ${p} #${j}: key`)
            assert.ok(transform(src.value).equals(m.value), `read_committed partition ${p} #${j}: value`)
            assert.equal(header(m, 'x-src'), `${p}:${j}`, `read_committed partition ${p} #${j}: source offset`)
            assert.ok(!seenKeys.has(m.key), `read_committed: key ${m.key} seen twice`)
            seenKeys.add(m.key)
          })
          committedTotal += got.length
        }
        assert.equal(committedTotal, NUM_RECORDS)
        assert.equal(seenKeys.size, NUM_RECORDS, 'read_committed: every input record exactly once')

        // read_uncommitted: every record of every transaction
        let uncommittedTotal = 0
        const uncommittedNumbers = new Set()
        for (const p of PARTITIONS) {
          const got = uncommittedRead.view.get(p)
          assertSameSequence(
            got.map(m => `${m.offset} ${m.key} t${header(m, 'x-txn')}`),
            expectedLog.get(p).filter(e => e.kind === 'data').map(e => `${e.offset} ${e.key} t${e.txn}`),
            `read_uncommitted consumer, partition ${p}`
          )
          for (const m of got) uncommittedNumbers.add(header(m, 'x-txn'))
          uncommittedTotal += got.length
        }
        const abortedRecords = abortedTxns.reduce((sum, tx) => sum + tx.records, 0)
        assert.equal(uncommittedTotal, NUM_RECORDS + abortedRecords, 'read_uncommitted: committed plus aborted records')
        assert.ok(uncommittedTotal > NUM_RECORDS)
        for (const n of abortedNumbers) {
          assert.ok(uncommittedNumbers.has(n), `read_uncommitted sees aborted transaction ${n}`)
        }

        t.diagnostic(
          `input ends ${JSON.stringify(ends)}; ${txns.length} transactions (${committedTxns.length} committed, ` +
            `${abortedTxns.length} aborted: ${[...abortedNumbers].join(',')}; ${abortedRecords} aborted records) in ${copyMs} ms; ` +
            `output ends ${JSON.stringify(expectedEnds)}; producer ids ${[...producerIds]}; ` +
            `consumer redeliveries committed/uncommitted ${committedRead.redelivered}/${uncommittedRead.redelivered}`
        )
      })
      await cleanup()
    }
  )

  test(
    'fencing: a second producer with the same transactional.id fences the first and aborts its open transaction',
    { timeout: FENCE_TEST_TIMEOUT_MS },
    async t => {
      let admin = null
      const producers = []
      const cleanup = async () => {
        for (const p of producers) await p.disconnect().catch(() => {})
        if (admin) await admin.disconnect().catch(() => {})
      }
      cleanups.push(cleanup)
      await withBrokerLogs(t, spool, async () => {
        const deadline = Date.now() + FENCE_TEST_TIMEOUT_MS - 5000
        const kafka = createKafka(spool, 'spool-compat-fencing')
        admin = kafka.admin()
        await admin.connect()
        await createTopics(admin, [FENCE_TOPIC])
        const messages = (tag, partition, count) =>
          Array.from({ length: count }, (_, i) => ({
            partition,
            key: `${tag}-${partition}-${i}`,
            value: `value of ${tag} ${partition}/${i}`,
            headers: { 'x-txn': tag },
          }))

        // A: one committed transaction, then one left open
        const a = transactionalProducer(kafka, FENCE_TXN_ID)
        producers.push(a)
        await a.connect()
        const a1 = await a.transaction()
        await a1.send({ topic: FENCE_TOPIC, acks: -1, messages: messages('a1', 0, 5) })
        await a1.commit()
        const a2 = await a.transaction()
        await a2.send({ topic: FENCE_TOPIC, acks: -1, messages: messages('a2', 0, 5) })

        // while a2 is open, the last stable offset of partition 0 stays at its first record
        let lso = null
        await waitUntil(
          'the last stable offset of partition 0 to be 6 while a2 is open',
          deadline,
          async () => {
            lso = await endOffsets(admin, FENCE_TOPIC)
            return lso[0] === 6
          },
          () => JSON.stringify(lso)
        )
        // a read_committed Fetch up to the last stable offset: its header has both
        const open = await fetchAllRecords({
          brokers: spool.brokers,
          topic: FENCE_TOPIC,
          endOffsets: { 0: 6 },
          isolationLevel: ISOLATION_LEVEL.READ_COMMITTED,
          timeoutMs: 10000,
        })
        assert.equal(Number(open.partitionHeaders.get(0).highWatermark), 11, 'high watermark of partition 0 with a2 open (Fetch)')
        assert.equal(Number(open.partitionHeaders.get(0).lastStableOffset), 6, 'last stable offset of partition 0 with a2 open (Fetch)')
        assert.deepEqual(open.controls.get(0).map(c => [c.offset, c.type]), [[5, MARKER.COMMIT]], "a1's commit marker at offset 5")

        // B: same transactional.id; its first transaction() sends InitProducerId, which fences A
        const b = transactionalProducer(kafka, FENCE_TXN_ID)
        producers.push(b)
        await b.connect()
        const b1 = await within(30000, "B's InitProducerId", b.transaction())

        // A is fenced: Produce (partition 0 is already in a2), AddPartitionsToTxn (partition 1), EndTxn
        const produceError = await rejectionOf("A's send to partition 0", () =>
          a2.send({ topic: FENCE_TOPIC, acks: -1, messages: messages('a2-late', 0, 2) })
        )
        const produceType = assertFenced(produceError, "A's txn.send to a partition already in its transaction (Produce)")
        const addError = await rejectionOf("A's send to partition 1", () =>
          a2.send({ topic: FENCE_TOPIC, acks: -1, messages: messages('a2-late', 1, 2) })
        )
        const addType = assertFenced(addError, "A's txn.send to a new partition (AddPartitionsToTxn)")
        const commitError = await rejectionOf("A's commit", () => a2.commit())
        const commitType = assertFenced(commitError, "A's txn.commit (EndTxn)")
        await a.disconnect()

        // B carries on
        await b1.send({ topic: FENCE_TOPIC, acks: -1, messages: [...messages('b1', 0, 4), ...messages('b1', 1, 3)] })
        await b1.commit()

        // partition 0: a1 (5) COMMIT, a2 (5) ABORT, b1 (4) COMMIT; partition 1: b1 (3) COMMIT
        const expected = {
          0: [
            ...messages('a1', 0, 5).map(m => `d ${m.key} ta1`),
            'm commit',
            ...messages('a2', 0, 5).map(m => `d ${m.key} ta2`),
            'm abort',
            ...messages('b1', 0, 4).map(m => `d ${m.key} tb1`),
            'm commit',
          ],
          1: [...messages('b1', 1, 3).map(m => `d ${m.key} tb1`), 'm commit'],
          2: [],
        }
        const ends = Object.fromEntries(PARTITIONS.map(p => [p, expected[p].length]))
        await waitUntil(
          'the fence topic to be stable at its expected end offsets',
          deadline,
          async () => {
            lso = await endOffsets(admin, FENCE_TOPIC)
            return PARTITIONS.every(p => lso[p] === ends[p])
          },
          () => `${JSON.stringify(lso)} expected ${JSON.stringify(ends)}`
        )
        const raw = await fetchAllRecords({ brokers: spool.brokers, topic: FENCE_TOPIC, endOffsets: ends, timeoutMs: 10000 })
        for (const p of PARTITIONS) assertSameSequence(rawLog(raw, p), expected[p], `fence topic partition ${p}: raw log`)
        const batchesOf = tag =>
          raw.batches.get(0).filter(bc => raw.records.get(0).some(m => m.batchContext === bc && header(m, 'x-txn') === tag))
        const aBatch = batchesOf('a2')[0]
        const bBatch = batchesOf('b1')[0]
        assert.ok(aBatch && bBatch)
        assert.ok(
          String(aBatch.producerId) !== String(bBatch.producerId) || bBatch.producerEpoch > aBatch.producerEpoch,
          `B writes with a newer producer id/epoch than A: A ${aBatch.producerId}/${aBatch.producerEpoch}, B ${bBatch.producerId}/${bBatch.producerEpoch}`
        )

        // kafkajs consumers: read_committed sees a1 and b1, read_uncommitted also a2
        const [committedRead, uncommittedRead] = await Promise.all([
          consumeAll({ kafka, topic: FENCE_TOPIC, groupId: 'verify-fence-committed', readUncommitted: false, ends, deadline, label: 'read_committed' }),
          consumeAll({ kafka, topic: FENCE_TOPIC, groupId: 'verify-fence-uncommitted', readUncommitted: true, ends, deadline, label: 'read_uncommitted' }),
        ])
        const keysOf = read => PARTITIONS.flatMap(p => read.view.get(p).map(m => m.key)).sort()
        const keysTagged = (...tags) =>
          PARTITIONS.flatMap(p => expected[p].filter(s => tags.some(tag => s.endsWith(` t${tag}`))).map(s => s.split(' ')[1])).sort()
        assert.deepEqual(keysOf(committedRead), keysTagged('a1', 'b1'), 'read_committed: a1 and b1, nothing of the fenced a2')
        assert.deepEqual(keysOf(uncommittedRead), keysTagged('a1', 'a2', 'b1'), 'read_uncommitted: a1, a2 and b1')

        t.diagnostic(
          `fenced errors: Produce ${produceType}, AddPartitionsToTxn ${addType}, EndTxn ${commitType}; ` +
            `A ${aBatch.producerId}/${aBatch.producerEpoch}, B ${bBatch.producerId}/${bBatch.producerEpoch}`
        )
      })
      await cleanup()
    }
  )
})
