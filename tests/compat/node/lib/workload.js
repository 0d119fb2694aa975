'use strict'

// Shared produce / verify logic for the kafkajs compatibility tests.

const assert = require('assert/strict')
const crypto = require('crypto')
const { Partitioners } = require('kafkajs')

const NUM_HEADERS = 2

/**
 * Deterministic record i of a workload. Key, value and both headers are
 * distinct per record; values mix text and binary bytes and vary in length
 * (so varint lengths of 1 and 2 bytes occur) while staying compressible.
 */
function makeRecord(tag, i, baseTimestamp) {
  const key = Buffer.from(`key-${tag}-${String(i).padStart(6, '0')}`)
  // xorshift PRNG seeded by i: deterministic, different per record
  let x = (i + 1) * 2654435761
  const rand = () => {
    x ^= x << 13
    x ^= x >>> 17
    x ^= x << 5
    return x >>> 0
  }
  const len = 10 + (rand() % 300)
  const body = Buffer.alloc(len)
  for (let j = 0; j < len; j++) {
    // mostly a small alphabet (compressible), sometimes arbitrary bytes incl. 0x00/0xff
    const r = rand()
    body[j] = r % 7 === 0 ? r & 0xff : 97 + (r % 6)
  }
  const value = Buffer.concat([Buffer.from(`value-${tag}-${i}:`), body])
  const headers = {
    'x-index': Buffer.from(String(i)),
    'x-digest': crypto.createHash('sha256').update(value).digest(),
  }
  return { key, value, headers, timestamp: String(baseTimestamp + i) }
}

/**
 * A kafkajs partitioner that delegates to the DefaultPartitioner (murmur2 of
 * the key, like the Java client) and records the partition chosen per key.
 */
function recordingPartitioner() {
  const assigned = new Map()
  const createPartitioner = () => {
    const inner = Partitioners.DefaultPartitioner()
    return args => {
      const partition = inner(args)
      const key = args.message.key.toString()
      const previous = assigned.get(key)
      if (previous !== undefined && previous !== partition) {
        throw new Error(`partitioner not deterministic for key ${key}: ${previous} then ${partition}`)
      }
      assigned.set(key, partition)
      return partition
    }
  }
  return { createPartitioner, assigned }
}

/**
 * Produce `records` in chunks of `batchSize`, alternating producer.send and
 * producer.sendBatch, acks=-1. Uses the RecordMetadata of every response to
 * work out the offset of every record: within one request, the records for a
 * partition are appended in order starting at that partition's baseOffset.
 * Asserts that the base offsets are contiguous (0..n-1 per partition, or
 * startOffsets[p].. when the partitions already hold records).
 *
 * @returns {{ placements: {partition:number, offset:number}[], counts: Record<number, number>, sends: number }}
 *   counts[p] is the partition's end offset afterwards
 */
async function produceAll({
  producer,
  assigned,
  topic,
  records,
  batchSize,
  compression,
  numPartitions,
  deadline,
  startOffsets = null,
}) {
  const placements = new Array(records.length)
  const counts = {}
  for (let p = 0; p < numPartitions; p++) counts[p] = startOffsets ? Number(startOffsets[p] || 0) : 0
  let sends = 0

  for (let start = 0; start < records.length; start += batchSize) {
    if (Date.now() > deadline) throw new Error(`produce did not finish before the deadline (at record ${start})`)
    const chunk = records.slice(start, start + batchSize)
    const messages = chunk.map(r => ({ key: r.key, value: r.value, headers: r.headers, timestamp: r.timestamp }))
    const useBatchApi = sends % 2 === 1
    const metadata = useBatchApi
      ? await producer.sendBatch({ acks: -1, compression, topicMessages: [{ topic, messages }] })
      : await producer.send({ topic, acks: -1, compression, messages })
    sends++

    // records of this chunk per partition, in order
    const chunkByPartition = new Map()
    chunk.forEach((r, idx) => {
      const p = assigned.get(r.key.toString())
      assert.ok(p !== undefined, `no partition recorded for key ${r.key}`)
      if (!chunkByPartition.has(p)) chunkByPartition.set(p, [])
      chunkByPartition.get(p).push(start + idx)
    })

    const seen = new Set()
    for (const entry of metadata) {
      assert.equal(entry.topicName, topic, 'RecordMetadata.topicName')
      assert.equal(entry.errorCode, 0, `RecordMetadata errorCode for partition ${entry.partition}`)
      assert.ok(!seen.has(entry.partition), `duplicate RecordMetadata for partition ${entry.partition}`)
      seen.add(entry.partition)
      const indexes = chunkByPartition.get(entry.partition)
      assert.ok(indexes, `RecordMetadata for partition ${entry.partition} that received no records in this send`)
      const baseOffset = Number(entry.baseOffset)
      assert.equal(
        baseOffset,
        counts[entry.partition],
        `send #${sends}: baseOffset of partition ${entry.partition} should continue contiguously`
      )
      indexes.forEach((recordIndex, j) => {
        placements[recordIndex] = { partition: entry.partition, offset: baseOffset + j }
      })
      counts[entry.partition] += indexes.length
    }
    assert.deepEqual(
      [...seen].sort(),
      [...chunkByPartition.keys()].sort(),
      `send #${sends}: RecordMetadata partitions vs partitions written`
    )
  }
  return { placements, counts, sends }
}

/**
 * Check the fetched records against what was produced: every partition holds
 * exactly offsets 0..n-1, and the record at (partition, offset) has the key,
 * value, headers and timestamp of the record the produce responses put there.
 */
function verifyFetched({ records, placements, fetched, counts }) {
  const expectedAt = new Map() // `${p}:${offset}` -> record index
  placements.forEach((pl, idx) => {
    assert.ok(pl, `record ${idx} has no placement`)
    expectedAt.set(`${pl.partition}:${pl.offset}`, idx)
  })

  let total = 0
  for (const [p, messages] of fetched) {
    assert.equal(messages.length, counts[p], `partition ${p}: number of fetched records`)
    messages.forEach((m, j) => {
      assert.equal(Number(m.offset), j, `partition ${p}: offsets must be exactly 0..n-1`)
      const idx = expectedAt.get(`${p}:${j}`)
      assert.ok(idx !== undefined, `partition ${p} offset ${j}: no record was produced there`)
      const want = records[idx]
      const where = `partition ${p} offset ${j} (record ${idx})`
      assert.ok(m.key && want.key.equals(m.key), `${where}: key ${m.key} != ${want.key}`)
      assert.ok(m.value && want.value.equals(m.value), `${where}: value differs`)
      assert.equal(String(m.timestamp), want.timestamp, `${where}: timestamp`)
      const names = Object.keys(m.headers || {}).sort()
      assert.deepEqual(names, Object.keys(want.headers).sort(), `${where}: header names`)
      assert.equal(names.length, NUM_HEADERS)
      for (const name of names) {
        const got = m.headers[name]
        assert.ok(Buffer.isBuffer(got), `${where}: header ${name} should be a single Buffer`)
        assert.ok(got.equals(want.headers[name]), `${where}: header ${name} differs`)
      }
      total++
    })
  }
  assert.equal(total, records.length, 'total number of fetched records')
}

module.exports = { makeRecord, recordingPartitioner, produceAll, verifyFetched }
