'use strict'

// Consumer groups against spool: kafkajs consumers sharing a group, a member
// leaving mid-stream, a broker restart, and a group mixing kafkajs and
// aiokafka members behind one assignor.
//
// Processing is "apply on commit": a member stages the records of a batch,
// commits the offset after its last record, and only a commit the broker
// acknowledged makes the batch count as processed (kafkajs: the
// COMMIT_OFFSETS instrumentation event, emitted only after a successful
// OffsetCommit; aiokafka: commit() returned). A commit the broker rejects
// (the group rebalanced: ILLEGAL_GENERATION, REBALANCE_IN_PROGRESS,
// UNKNOWN_MEMBER_ID) drops the batch and the next owner reads it again from
// the committed offset. So "every record processed exactly once" holds iff
// the broker fences stale generations, hands out the committed offsets
// (OffsetFetch) exactly, and keeps them across a restart; it is checked per
// partition: the processed offsets are exactly start..end-1, each once, with
// the key the producer put there.

const { describe, test, before, after } = require('node:test')
const assert = require('assert/strict')
const fs = require('fs')
const path = require('path')
const readline = require('readline')
const { spawn } = require('child_process')
const { AssignerProtocol, CompressionTypes } = require('kafkajs')

const { makeRecord, recordingPartitioner, produceAll } = require('./lib/workload')
const { createKafka, withBrokerLogs, uniqueTopic, startBroker, stopBroker } = require('./lib/harness')
const { REPO_ROOT, sleep } = require('./lib/spool')

const NUM_PARTITIONS = 6
const NUM_RECORDS = Number(process.env.COMPAT_GROUP_RECORDS || 30000)
const RESTART_RECORDS = 600
const MIXED_RECORDS_PER_PHASE = 3000
const FENCE_RECORDS = 3000
const FENCE_REBALANCE_TIMEOUT_MS = 3000
const BATCH_SIZE = 250
const POLL_MS = 25
const TEST_TIMEOUT_MS = 75000

const SPOOL_PYTHON =
  process.env.SPOOL_PYTHON || path.join(REPO_ROOT, 'target', 'compat-venv', 'bin', 'python')
const AIOKAFKA_MEMBER = path.join(__dirname, 'lib', 'aiokafka_member.py')

// a short initial rebalance delay keeps the file fast; members joining
// together still land in one generation
const BROKER_SETTINGS = { group_initial_rebalance_delay_ms: 500 }

// kafkajs consumer settings: heartbeat often so a rebalance is noticed within
// ~0.5 s; short fetch waits so heartbeats are not held up by long polls.
const CONSUMER_CONFIG = {
  sessionTimeout: 10000,
  rebalanceTimeout: 20000,
  heartbeatInterval: 500,
  maxWaitTimeInMs: 200,
  retry: { retries: 5, initialRetryTime: 100, maxRetryTime: 1000 },
}

// kafkajs logs every error response at ERROR level; REBALANCE_IN_PROGRESS on
// Heartbeat is how a member learns of a rebalance, so drop just that line
// (counted) and keep everything else.
const quietRebalanceLogs = { dropped: 0 }
const logCreator = (...args) => {
  const inner = require('kafkajs/src/loggers/console')(...args)
  return entry => {
    if (entry.log && entry.log.error === 'The group is rebalancing, so a rejoin is needed') {
      quietRebalanceLogs.dropped++
      return
    }
    inner(entry)
  }
}
const kafkaFor = (spool, clientId) => createKafka(spool, clientId, { logCreator })

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

/** Which (partition, offset) each member processed, per partition. */
class Ledger {
  constructor(numPartitions) {
    this.byPartition = Array.from({ length: numPartitions }, () => [])
    this.seen = new Map() // `${p}:${o}` -> entry
    this.duplicates = []
    this.unique = 0
    this.perMember = new Map()
    this.seq = 0
  }

  /** records: [{ offset, key }] of one committed batch of `partition`. */
  apply(member, partition, records, info = {}) {
    const batch = this.seq++
    for (const { offset, key } of records) {
      const entry = { offset, key, member, batch, generation: info.generation, memberId: info.memberId }
      const id = `${partition}:${offset}`
      const previous = this.seen.get(id)
      if (previous) {
        this.duplicates.push({ partition, offset, first: previous, again: entry })
        continue
      }
      this.seen.set(id, entry)
      this.byPartition[partition].push(entry)
      this.unique++
      this.perMember.set(member, (this.perMember.get(member) || 0) + 1)
    }
  }

  count(member) {
    return this.perMember.get(member) || 0
  }

  summary() {
    return JSON.stringify({
      unique: this.unique,
      duplicates: this.duplicates.length,
      perMember: Object.fromEntries(this.perMember),
      perPartition: this.byPartition.map(l => l.length),
    })
  }

  /**
   * Exactly once: partition p holds exactly offsets from[p]..to[p]-1, each
   * processed once, with the key the producer wrote there.
   */
  verify({ from, to, keyAt, label }) {
    assert.deepEqual(
      this.duplicates.slice(0, 5).map(d => ({
        partition: d.partition,
        offset: d.offset,
        first: `${d.first.member} gen ${d.first.generation}`,
        again: `${d.again.member} gen ${d.again.generation}`,
      })),
      [],
      `${label}: records processed twice (${this.duplicates.length} in all)`
    )
    this.byPartition.forEach((entries, p) => {
      const sorted = [...entries].sort((a, b) => a.offset - b.offset)
      const want = to[p] - from[p]
      const offsets = sorted.map(e => e.offset)
      if (sorted.length !== want || (want > 0 && (offsets[0] !== from[p] || offsets[want - 1] !== to[p] - 1))) {
        const missing = []
        const have = new Set(offsets)
        for (let o = from[p]; o < to[p] && missing.length < 10; o++) if (!have.has(o)) missing.push(o)
        const outside = offsets.filter(o => o < from[p] || o >= to[p]).slice(0, 10)
        assert.fail(
          `${label}: partition ${p} processed ${sorted.length} records, expected offsets ${from[p]}..${to[p] - 1} ` +
            `(${want}); first missing ${JSON.stringify(missing)}, outside the range ${JSON.stringify(outside)}`
        )
      }
      sorted.forEach((e, j) => {
        assert.equal(e.offset, from[p] + j, `${label}: partition ${p} offsets must be contiguous`)
        assert.equal(e.key, keyAt(p, e.offset), `${label}: partition ${p} offset ${e.offset}: key`)
      })
    })
  }
}

/** (partition, offset) -> key, from produceAll's placements. */
function keyIndex(records, placements, into = new Map()) {
  placements.forEach((pl, idx) => into.set(`${pl.partition}:${pl.offset}`, records[idx].key.toString()))
  return into
}

/** A kafkajs group member that processes by "apply on commit" into `ledger`. */
async function startKafkajsMember({ kafka, groupId, topic, name, ledger, config = {}, beforeCommit = null }) {
  const consumer = kafka.consumer({ groupId, ...CONSUMER_CONFIG, ...config })
  const member = {
    name,
    client: 'kafkajs',
    consumer,
    joins: [],
    crashes: [],
    commitErrors: [],
    unconfirmed: 0,
    confirmed: new Map(), // partition -> last acknowledged commit
    stopped: false,
  }
  consumer.on(consumer.events.GROUP_JOIN, e => member.joins.push({ ...e.payload, at: Date.now() }))
  consumer.on(consumer.events.CRASH, e =>
    member.crashes.push(`${e.payload.error && e.payload.error.message} (restart: ${e.payload.restart})`)
  )
  // emitted by kafkajs only after the broker acknowledged the OffsetCommit
  consumer.on(consumer.events.COMMIT_OFFSETS, e => {
    for (const t of e.payload.topics) {
      for (const p of t.partitions) {
        member.confirmed.set(Number(p.partition), {
          offset: String(p.offset),
          generation: e.payload.groupGenerationId,
          memberId: e.payload.memberId,
        })
      }
    }
  })
  await consumer.connect()
  await consumer.subscribe({ topics: [topic], fromBeginning: true })
  await consumer.run({
    autoCommit: false,
    partitionsConsumedConcurrently: 1,
    eachBatch: async ({ batch }) => {
      if (batch.messages.length === 0) return
      const partition = batch.partition
      const staged = batch.messages.map(m => ({ offset: Number(m.offset), key: m.key.toString() }))
      const next = String(staged[staged.length - 1].offset + 1)
      if (beforeCommit) await beforeCommit(partition, staged)
      member.confirmed.delete(partition)
      try {
        await consumer.commitOffsets([{ topic, partition, offset: next }])
      } catch (e) {
        // Not processed. Rethrow so kafkajs neither resolves the batch nor
        // moves on; rethrow the protocol error itself (commitOffsets wraps it
        // in a KafkaJSNonRetriableError, which would crash the consumer for
        // good) so that the runner rejoins on UNKNOWN_MEMBER_ID /
        // ILLEGAL_GENERATION / REBALANCE_IN_PROGRESS.
        const cause = e.cause && e.cause.type ? e.cause : e
        member.commitErrors.push(`${partition}@${next}: ${cause.type || e.name}: ${e.message}`)
        throw cause
      }
      const ack = member.confirmed.get(partition)
      if (ack && ack.offset === next) {
        ledger.apply(name, partition, staged, ack)
      } else {
        // commitOffsets returns without committing once disconnect() began
        member.unconfirmed++
      }
    },
  })
  member.stop = async () => {
    if (member.stopped) return
    member.stopped = true
    await consumer.disconnect()
  }
  member.lastJoin = () => member.joins[member.joins.length - 1]
  return member
}

/** Run the starters concurrently; if one fails, stop the others and rethrow. */
async function startAll(starters) {
  const results = await Promise.allSettled(starters.map(start => start()))
  const failed = results.find(r => r.status === 'rejected')
  if (failed) {
    for (const r of results) if (r.status === 'fulfilled') await r.value.stop().catch(() => {})
    throw failed.reason
  }
  return results.map(r => r.value)
}

/** One aiokafka member (lib/aiokafka_member.py) in its own Python process. */
const liveChildren = new Set()
process.on('exit', () => {
  for (const child of liveChildren) {
    try {
      child.kill('SIGKILL')
    } catch (_) {
      // gone
    }
  }
})

function checkPython() {
  try {
    fs.accessSync(SPOOL_PYTHON, fs.constants.X_OK)
  } catch (e) {
    throw new Error(
      `no Python with aiokafka at ${SPOOL_PYTHON} (set SPOOL_PYTHON; scripts/test.sh creates ` +
        `<repo>/target/compat-venv with tests/compat/python/requirements.txt): ${e.message}`
    )
  }
}

function startAiokafkaMember({ bootstrap, groupId, topic, name, ledger, deadlineS = 70 }) {
  const config = { bootstrap, topic, group: groupId, client_id: name, deadline_s: deadlineS }
  const child = spawn(SPOOL_PYTHON, [AIOKAFKA_MEMBER, JSON.stringify(config)], {
    stdio: ['pipe', 'pipe', 'pipe'],
    env: { ...process.env, PYTHONUNBUFFERED: '1' },
  })
  liveChildren.add(child)
  const member = {
    name,
    client: 'aiokafka',
    child,
    events: [],
    assigns: [], // assignments this member computed as the group leader
    assignments: [],
    commitFailures: [],
    stderr: '',
    exit: null,
    protocolErrors: [],
  }
  member.exited = new Promise(resolve => {
    child.once('exit', (code, signal) => {
      member.exit = { code, signal }
      liveChildren.delete(child)
      resolve(member.exit)
    })
    child.once('error', err => {
      member.exit = { code: null, signal: null, error: err.message }
      liveChildren.delete(child)
      resolve(member.exit)
    })
  })
  child.stderr.on('data', d => {
    if (member.stderr.length < 200000) member.stderr += d.toString()
  })
  child.stdin.on('error', () => {}) // EPIPE if it already exited
  readline.createInterface({ input: child.stdout }).on('line', line => {
    let ev
    try {
      ev = JSON.parse(line)
    } catch (_) {
      member.protocolErrors.push(line)
      return
    }
    ev.at = Date.now()
    member.events.push(ev)
    if (ev.event === 'applied') {
      ledger.apply(
        name,
        ev.partition,
        ev.records.map(([offset, key]) => ({ offset, key })),
        { generation: ev.generation, memberId: ev.member_id }
      )
    } else if (ev.event === 'assigned') {
      member.assignments.push(ev)
    } else if (ev.event === 'assign') {
      member.assigns.push(ev)
    } else if (ev.event === 'commit_failed') {
      member.commitFailures.push(ev)
    }
  })
  member.ready = () => member.events.some(e => e.event === 'ready')
  member.lastAssignment = () => member.assignments[member.assignments.length - 1]
  member.describe = () =>
    `${name}: exit=${JSON.stringify(member.exit)} events=${JSON.stringify(
      member.events.filter(e => e.event !== 'applied').slice(-8)
    )} stderr tail=${JSON.stringify(member.stderr.slice(-1500))}`
  member.stop = async (timeoutMs = 20000) => {
    if (!member.exit) {
      child.stdin.end('stop\n')
      const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs)
      await member.exited
      clearTimeout(timer)
    }
    return member.exit
  }
  return member
}

async function describeGroup(admin, groupId) {
  const { groups } = await admin.describeGroups([groupId])
  assert.equal(groups.length, 1)
  const g = groups[0]
  return {
    ...g,
    members: g.members.map(m => {
      const assignment = m.memberAssignment.length
        ? AssignerProtocol.MemberAssignment.decode(m.memberAssignment)
        : null
      const metadata = m.memberMetadata.length ? AssignerProtocol.MemberMetadata.decode(m.memberMetadata) : null
      return { ...m, assignment, metadata }
    }),
  }
}

const partitionsOf = (m, topic) => (m.assignment && m.assignment.assignment[topic]) || []

/** Stable, `n` members, each with a non-empty share, together every partition exactly once. */
function isStableSplit(g, topic, n) {
  if (g.state !== 'Stable' || g.members.length !== n) return false
  const all = g.members.flatMap(m => partitionsOf(m, topic))
  return (
    g.members.every(m => partitionsOf(m, topic).length > 0) &&
    all.length === NUM_PARTITIONS &&
    new Set(all).size === NUM_PARTITIONS
  )
}

const groupSummary = (g, topic) =>
  g
    ? JSON.stringify({
        state: g.state,
        protocol: g.protocol,
        members: g.members.map(m => `${m.clientId}:${JSON.stringify(partitionsOf(m, topic))}`),
      })
    : 'none'

async function committedOffsets(admin, groupId, topic) {
  const result = await admin.fetchOffsets({ groupId, topics: [topic] })
  const t = result.find(r => r.topic === topic)
  assert.ok(t, `fetchOffsets returned no entry for ${topic}: ${JSON.stringify(result)}`)
  return Object.fromEntries(t.partitions.map(p => [p.partition, Number(p.offset)]))
}

async function endOffsets(admin, topic) {
  const offsets = await admin.fetchTopicOffsets(topic)
  return Object.fromEntries(offsets.map(o => [o.partition, Number(o.high)]))
}

function makeRecords(tag, n) {
  const base = Date.now() - n
  const records = []
  for (let i = 0; i < n; i++) records.push(makeRecord(tag, i, base))
  return records
}

async function produceInBackground({ kafka, topic, records, deadline, startOffsets }) {
  const { createPartitioner, assigned } = recordingPartitioner()
  const producer = kafka.producer({ createPartitioner, allowAutoTopicCreation: false })
  await producer.connect()
  const state = { done: false, error: null, result: null }
  state.promise = produceAll({
    producer,
    assigned,
    topic,
    records,
    batchSize: BATCH_SIZE,
    compression: CompressionTypes.None,
    numPartitions: NUM_PARTITIONS,
    deadline,
    startOffsets,
  })
    .then(r => {
      state.result = r
    })
    .catch(e => {
      state.error = e
    })
    .finally(async () => {
      state.done = true
      await producer.disconnect().catch(() => {})
    })
  return state
}

async function createTopic(admin, topic) {
  const created = await admin.createTopics({
    topics: [{ topic, numPartitions: NUM_PARTITIONS, replicationFactor: 1 }],
    waitForLeaders: true,
    timeout: 10000,
  })
  assert.equal(created, true, `createTopics ${topic}`)
}

// ---------------------------------------------------------------------------

describe('consumer groups', { timeout: 5 * 60 * 1000 }, () => {
  let spool = null
  const cleanups = []
  // for withBrokerLogs: always the current handle (the first test restarts the broker)
  const broker = {
    logTail: n => spool.logTail(n),
    get logFile() {
      return spool.logFile
    },
    set failed(value) {
      spool.failed = value
    },
  }

  before(async () => {
    spool = await startBroker({ settings: BROKER_SETTINGS })
  })

  after(async () => {
    for (const fn of cleanups.reverse()) await fn().catch(() => {})
    await stopBroker(spool)
  })

  test(
    `kafkajs group: ${NUM_RECORDS} records exactly once across 3 members, a member leaving mid-stream, a broker restart`,
    { timeout: TEST_TIMEOUT_MS },
    async t => {
      const kafkaClients = []
      const members = []
      let admin = null
      const cleanup = async () => {
        for (const m of members) await m.stop().catch(() => {})
        if (admin) await admin.disconnect().catch(() => {})
      }
      cleanups.push(cleanup)
      await withBrokerLogs(t, broker, async () => {
        const deadline = Date.now() + TEST_TIMEOUT_MS - 5000
        const topic = uniqueTopic('compat-group')
        const groupId = `${topic}-G`
        let kafka = kafkaFor(spool, 'spool-compat-groups')
        kafkaClients.push(kafka)
        admin = kafka.admin()
        await admin.connect()
        await createTopic(admin, topic)

        const ledger = new Ledger(NUM_PARTITIONS)
        const t0 = Date.now()
        // start together, so they join within the initial rebalance delay
        // (consumer.run() resolves only once the member has joined and synced)
        members.push(
          ...(await startAll(['K1', 'K2', 'K3'].map(name => () => startKafkajsMember({ kafka, groupId, topic, name, ledger }))))
        )
        const [k1, k2, k3] = members

        // one generation with all three, two partitions each
        let group = null
        await waitUntil(
          'the group to be Stable with 3 kafkajs members sharing 6 partitions',
          deadline,
          async () => {
            group = await describeGroup(admin, groupId)
            return isStableSplit(group, topic, 3) && members.every(m => m.lastJoin())
          },
          () => groupSummary(group, topic)
        )
        assert.equal(group.protocolType, 'consumer')
        assert.equal(group.protocol, 'RoundRobinAssigner')
        for (const m of group.members) {
          assert.equal(partitionsOf(m, topic).length, 2, `round robin gives ${m.clientId} 2 of 6 partitions`)
          assert.deepEqual(m.metadata.topics, [topic], 'member metadata (subscription)')
        }

        // produce concurrently with the consumption
        const records = makeRecords('grp', NUM_RECORDS)
        const production = await produceInBackground({ kafka, topic, records, deadline })

        // K3 leaves once a third is processed and every member has processed some
        await waitUntil(
          'every member to process records and a third of all records to be processed',
          deadline,
          () => {
            if (production.error) throw production.error
            return ledger.unique >= NUM_RECORDS / 3 && members.every(m => ledger.count(m.name) > 0)
          },
          () => ledger.summary()
        )
        const k3Partitions = k3.lastJoin().memberAssignment[topic]
        assert.equal(k3Partitions.length, 2)
        await k3.stop() // LeaveGroup
        const leftAt = {
          unique: ledger.unique,
          producedAll: production.done,
          k3Processed: ledger.count('K3'),
          // K3's processed end per partition it owned (= its last committed offset)
          k3End: Object.fromEntries(
            k3Partitions.map(p => {
              const mine = ledger.byPartition[p].filter(e => e.member === 'K3')
              return [p, mine.length ? Math.max(...mine.map(e => e.offset)) + 1 : 0]
            })
          ),
        }
        assert.ok(leftAt.unique < NUM_RECORDS, 'K3 must leave with records still to process')

        // K1 and K2 take over and finish
        await waitUntil(
          `all ${NUM_RECORDS} records to be produced and processed`,
          deadline,
          () => {
            if (production.error) throw production.error
            return production.done && ledger.unique >= NUM_RECORDS
          },
          () => `${ledger.summary()} produced=${production.done}`
        )
        if (production.error) throw production.error
        const { placements, counts } = production.result
        const keys = keyIndex(records, placements)
        const zero = Object.fromEntries(Object.keys(counts).map(p => [p, 0]))
        ledger.verify({ from: zero, to: counts, keyAt: (p, o) => keys.get(`${p}:${o}`), label: 'phase 1' })
        assert.equal(ledger.unique, NUM_RECORDS)

        // no gap, no overlap at the takeover: K3's partitions continue exactly
        // at its last commit, processed by K1/K2
        for (const p of k3Partitions) {
          const after = ledger.byPartition[p].filter(e => e.offset >= leftAt.k3End[p])
          assert.ok(
            after.every(e => e.member !== 'K3'),
            `partition ${p}: K3 processed records after its last commit before leaving`
          )
          if (counts[p] > leftAt.k3End[p]) {
            const first = Math.min(...after.map(e => e.offset))
            assert.equal(first, leftAt.k3End[p], `partition ${p}: the new owner starts at K3's committed offset`)
          }
        }
        const takenOver = k3Partitions.filter(p => counts[p] > leftAt.k3End[p])
        assert.ok(takenOver.length > 0, `K3's partitions had nothing left to take over: ${JSON.stringify(leftAt)}`)
        for (const m of [k1, k2]) {
          assert.ok(m.joins.length >= 2, `${m.name} rejoined after K3 left (joins: ${m.joins.length})`)
          assert.equal(m.lastJoin().memberAssignment[topic].length, 3, `${m.name} owns 3 of 6 partitions after K3 left`)
        }

        // committed offsets == end offsets
        const ends = await endOffsets(admin, topic)
        assert.deepEqual(ends, counts, 'end offsets == what the producer wrote')
        assert.deepEqual(await committedOffsets(admin, groupId, topic), ends, 'committed offsets before the restart')

        await k1.stop()
        await k2.stop()
        members.length = 0
        await waitUntil('the group to become Empty', deadline, async () => {
          group = await describeGroup(admin, groupId)
          return group.state === 'Empty' && group.members.length === 0
        }, () => groupSummary(group, topic))
        await admin.disconnect()
        admin = null

        // --- restart on the same port and data dir -----------------------
        spool = await spool.restart()
        assert.ok(spool.lastStop.graceful, 'SIGTERM shutdown before the restart')

        kafka = kafkaFor(spool, 'spool-compat-groups-after-restart')
        admin = kafka.admin()
        await admin.connect()
        assert.deepEqual(await endOffsets(admin, topic), ends, 'end offsets after the restart')
        assert.deepEqual(await committedOffsets(admin, groupId, topic), ends, 'committed offsets after the restart')
        group = await describeGroup(admin, groupId)
        assert.equal(group.state, 'Empty', `group after the restart: ${groupSummary(group, topic)}`)

        // a fresh member (fromBeginning) resumes at the committed offsets: it
        // processes exactly the records produced after the restart
        const ledger2 = new Ledger(NUM_PARTITIONS)
        const k4 = await startKafkajsMember({ kafka, groupId, topic, name: 'K4', ledger: ledger2 })
        members.push(k4)
        await waitUntil('K4 to own all 6 partitions', deadline, async () => {
          group = await describeGroup(admin, groupId)
          return isStableSplit(group, topic, 1) && k4.lastJoin()
        }, () => groupSummary(group, topic))

        const moreRecords = makeRecords('grp-restart', RESTART_RECORDS)
        const more = await produceInBackground({ kafka, topic, records: moreRecords, deadline, startOffsets: ends })
        await waitUntil(
          `the ${RESTART_RECORDS} records produced after the restart to be processed`,
          deadline,
          () => {
            if (more.error) throw more.error
            return (more.done && ledger2.unique >= RESTART_RECORDS) || ledger2.unique > RESTART_RECORDS
          },
          () => `${ledger2.summary()} produced=${more.done}`
        )
        if (more.error) throw more.error
        const keys2 = keyIndex(moreRecords, more.result.placements)
        // nothing below the committed offsets (a reset to the beginning would show here)
        ledger2.verify({ from: ends, to: more.result.counts, keyAt: (p, o) => keys2.get(`${p}:${o}`), label: 'after restart' })
        const ends2 = await endOffsets(admin, topic)
        assert.deepEqual(ends2, more.result.counts)
        assert.deepEqual(await committedOffsets(admin, groupId, topic), ends2, 'committed offsets at the end')
        await k4.stop()
        members.length = 0

        const problems = [k1, k2, k3, k4].map(m => ({
          name: m.name,
          // each join: ms since the first member started, partitions, L if it led
          joins: m.joins.map(j => `${j.at - t0}:${(j.memberAssignment[topic] || []).join('')}${j.isLeader ? 'L' : ''}`),
          unconfirmed: m.unconfirmed,
          commitErrors: m.commitErrors.length,
          crashes: m.crashes,
          processed: ledger.count(m.name) + ledger2.count(m.name),
        }))
        t.diagnostic(`members: ${JSON.stringify(problems)}`)
        t.diagnostic(`K3 left at: ${JSON.stringify(leftAt)}; heartbeat REBALANCE_IN_PROGRESS log lines dropped: ${quietRebalanceLogs.dropped}`)
      })
      await cleanup()
    }
  )

  test(
    'a member stuck past the rebalance timeout is fenced: its late commit is rejected, the others re-read its batch',
    { timeout: TEST_TIMEOUT_MS },
    async t => {
      const members = []
      let admin = null
      let release = () => {}
      const cleanup = async () => {
        release()
        for (const m of members) await m.stop().catch(() => {})
        if (admin) await admin.disconnect().catch(() => {})
      }
      cleanups.push(cleanup)
      await withBrokerLogs(t, broker, async () => {
        const deadline = Date.now() + TEST_TIMEOUT_MS - 5000
        const topic = uniqueTopic('compat-fence')
        const groupId = `${topic}-F`
        const kafka = kafkaFor(spool, 'spool-compat-fence')
        admin = kafka.admin()
        await admin.connect()
        await createTopic(admin, topic)
        const records = makeRecords('fence', FENCE_RECORDS)
        const production = await produceInBackground({ kafka, topic, records, deadline })
        await production.promise
        if (production.error) throw production.error
        const { placements, counts } = production.result
        const keys = keyIndex(records, placements)

        // the group's rebalance timeout (the join phase's deadline) is the
        // members' largest: 3 s; sessions stay at 10 s, so only the join
        // deadline can remove the stuck member
        const config = { rebalanceTimeout: FENCE_REBALANCE_TIMEOUT_MS }
        const ledger = new Ledger(NUM_PARTITIONS)
        const gate = new Promise(resolve => {
          release = resolve
        })
        let stuck = null
        const stuckMember = await startKafkajsMember({
          kafka,
          groupId,
          topic,
          name: 'A',
          ledger,
          config,
          // A stalls before committing its first batch, until released
          beforeCommit: async (partition, staged) => {
            if (stuck) return
            stuck = { partition, first: staged[0].offset, last: staged[staged.length - 1].offset, at: Date.now() }
            await gate
          },
        })
        members.push(stuckMember)
        await waitUntil('A to stall on its first batch', deadline, () => stuck, () => ledger.summary())
        const generationBefore = stuckMember.joins.length

        // B joins: the group must rebalance, A cannot rejoin while stuck, so
        // the join phase ends at the rebalance timeout without A
        const b = await startKafkajsMember({ kafka, groupId, topic, name: 'B', ledger, config })
        members.push(b)
        let group = null
        await waitUntil(
          'B to own every partition after A was dropped from the group',
          deadline,
          async () => {
            group = await describeGroup(admin, groupId)
            return isStableSplit(group, topic, 1) && b.lastJoin() && group.members[0].memberId === b.lastJoin().memberId
          },
          () => groupSummary(group, topic)
        )
        assert.equal(stuckMember.joins.length, generationBefore, 'A did not rejoin while stuck')
        assert.deepEqual(b.lastJoin().memberAssignment[topic].slice().sort(), [0, 1, 2, 3, 4, 5])
        assert.ok(Date.now() - stuck.at >= FENCE_REBALANCE_TIMEOUT_MS - 500, 'A was dropped no earlier than the rebalance timeout')

        // B re-reads A's uncommitted batch from the committed offset and finishes
        await waitUntil(
          `B to process all ${FENCE_RECORDS} records`,
          deadline,
          () => ledger.unique >= FENCE_RECORDS,
          () => ledger.summary()
        )
        assert.ok(
          ledger.byPartition[stuck.partition].some(e => e.offset === stuck.first && e.member === 'B'),
          `B processed A's stalled batch (partition ${stuck.partition} from ${stuck.first})`
        )

        // now A's late commit (old generation, removed member) must be rejected
        release()
        await waitUntil(
          "A's late OffsetCommit to fail",
          deadline,
          () => stuckMember.commitErrors.length > 0 || stuckMember.confirmed.size > 0,
          () => JSON.stringify({ stuck, errors: stuckMember.commitErrors, confirmed: [...stuckMember.confirmed] })
        )
        assert.equal(stuckMember.confirmed.size, 0, `the broker acknowledged A's stale commit: ${JSON.stringify([...stuckMember.confirmed])}`)
        assert.match(
          stuckMember.commitErrors[0],
          /not aware of this member|UNKNOWN_MEMBER_ID|generation/i,
          'A\'s stale commit is rejected with UNKNOWN_MEMBER_ID (or ILLEGAL_GENERATION)'
        )

        // A rejoins as a new member; the group settles with both, and A
        // finds nothing left (committed offsets are at the end)
        await waitUntil(
          'A to rejoin and the group to be Stable with A and B',
          deadline,
          async () => {
            group = await describeGroup(admin, groupId)
            return isStableSplit(group, topic, 2) && stuckMember.joins.length > generationBefore
          },
          () => groupSummary(group, topic)
        )
        ledger.verify({
          from: Object.fromEntries(Object.keys(counts).map(p => [p, 0])),
          to: counts,
          keyAt: (p, o) => keys.get(`${p}:${o}`),
          label: 'fenced member',
        })
        assert.equal(ledger.count('A'), 0, 'A processed nothing (its only batch was fenced)')
        const ends = await endOffsets(admin, topic)
        assert.deepEqual(ends, counts)
        assert.deepEqual(await committedOffsets(admin, groupId, topic), ends, 'committed offsets == end offsets')
        t.diagnostic(`stalled: ${JSON.stringify(stuck)}; A's commit error: ${stuckMember.commitErrors[0]}`)
        for (const m of members) await m.stop()
        members.length = 0
      })
      await cleanup()
    }
  )

  test(
    'mixed group: aiokafka and kafkajs members share "RoundRobinAssigner" and process every record once',
    { timeout: TEST_TIMEOUT_MS },
    async t => {
      checkPython()
      const kjs = []
      const pys = []
      let admin = null
      const cleanup = async () => {
        for (const m of kjs) await m.stop().catch(() => {})
        for (const m of pys) await m.stop(5000).catch(() => {})
        if (admin) await admin.disconnect().catch(() => {})
      }
      cleanups.push(cleanup)
      await withBrokerLogs(t, broker, async () => {
        const deadline = Date.now() + TEST_TIMEOUT_MS - 5000
        const topic = uniqueTopic('compat-mixed')
        const groupId = `${topic}-M`
        const kafka = kafkaFor(spool, 'spool-compat-mixed')
        admin = kafka.admin()
        await admin.connect()
        await createTopic(admin, topic)
        const ledger = new Ledger(NUM_PARTITIONS)
        const keys = new Map()
        let group = null
        const state = () =>
          `${groupSummary(group, topic)} ledger=${ledger.summary()} ${pys.map(p => p.describe()).join(' | ')}`
        // throws if an aiokafka member exited without being asked to
        const pyFailed = () => {
          const dead = pys.find(p => p.exit && !p.stopRequested)
          if (dead) throw new Error(`aiokafka member exited early: ${dead.describe()}`)
          return false
        }

        // --- phase 1: the aiokafka member founds the group (and leads it) --
        const py1 = startAiokafkaMember({ bootstrap: spool.address, groupId, topic, name: 'aio-1', ledger })
        pys.push(py1)
        await waitUntil(
          'aio-1 to own all 6 partitions',
          deadline,
          () => pyFailed() || (py1.lastAssignment() && py1.lastAssignment().partitions.length === NUM_PARTITIONS),
          state
        )
        kjs.push(...(await startAll(['K1', 'K2'].map(name => () => startKafkajsMember({ kafka, groupId, topic, name, ledger })))))
        await waitUntil(
          'a Stable group of aio-1, K1 and K2, each with partitions',
          deadline,
          async () => {
            pyFailed()
            group = await describeGroup(admin, groupId)
            return isStableSplit(group, topic, 3) && kjs.every(m => m.lastJoin()) && py1.lastAssignment().partitions.length < 6
          },
          state
        )
        assert.equal(group.protocolType, 'consumer')
        assert.equal(group.protocol, 'RoundRobinAssigner')
        assert.deepEqual(group.members.map(m => m.clientId).sort(), ['aio-1', 'spool-compat-mixed', 'spool-compat-mixed'])
        for (const m of group.members) {
          assert.deepEqual(m.metadata.topics, [topic], `${m.clientId}: subscription in its JoinGroup metadata`)
          assert.equal(m.metadata.version, 0)
        }
        // aio-1 led the 3-member generation and its assignor produced what the broker handed out
        const lead = py1.assigns[py1.assigns.length - 1]
        assert.ok(lead && Object.keys(lead.members).length === 3, `aio-1 assigned the 3-member generation: ${JSON.stringify(py1.assigns)}`)
        assert.ok(kjs.every(m => m.lastJoin().isLeader === false), 'no kafkajs member led phase 1')
        const described1 = Object.fromEntries(group.members.map(m => [m.memberId, partitionsOf(m, topic).slice().sort()]))
        const computed1 = Object.fromEntries(
          Object.entries(lead.result).map(([id, a]) => [id, a.flatMap(([, ps]) => ps).sort()])
        )
        assert.deepEqual(described1, computed1, 'DescribeGroups assignments == what the aiokafka leader assigned')
        for (const m of kjs) {
          assert.deepEqual(
            [...m.lastJoin().memberAssignment[topic]].sort(),
            described1[m.lastJoin().memberId],
            `${m.name} decoded the aiokafka leader's assignment`
          )
        }

        const records1 = makeRecords('mix1', MIXED_RECORDS_PER_PHASE)
        const prod1 = await produceInBackground({ kafka, topic, records: records1, deadline })
        await waitUntil(
          'phase 1 records to be processed',
          deadline,
          () => {
            pyFailed()
            if (prod1.error) throw prod1.error
            return prod1.done && ledger.unique >= MIXED_RECORDS_PER_PHASE
          },
          state
        )
        keyIndex(records1, prod1.result.placements, keys)
        const zero = Object.fromEntries([...Array(NUM_PARTITIONS).keys()].map(p => [p, 0]))
        ledger.verify({ from: zero, to: prod1.result.counts, keyAt: (p, o) => keys.get(`${p}:${o}`), label: 'mixed phase 1' })
        const phase1 = { aio: ledger.count('aio-1'), K1: ledger.count('K1'), K2: ledger.count('K2') }
        assert.ok(phase1.aio > 0 && phase1.K1 > 0 && phase1.K2 > 0, `each member processed records: ${JSON.stringify(phase1)}`)

        // --- phase 2: aio-1 leaves, a kafkajs member leads, aio-2 joins ----
        py1.stopRequested = true
        const exit1 = await py1.stop()
        assert.deepEqual(exit1, { code: 0, signal: null }, `aio-1 exit: ${py1.describe()}`)
        await waitUntil(
          'K1 and K2 to split the partitions after aio-1 left',
          deadline,
          async () => {
            group = await describeGroup(admin, groupId)
            return isStableSplit(group, topic, 2)
          },
          state
        )
        const py2Started = Date.now()
        const py2 = startAiokafkaMember({ bootstrap: spool.address, groupId, topic, name: 'aio-2', ledger })
        pys.push(py2)
        await waitUntil(
          'a Stable group of K1, K2 and aio-2, each with partitions',
          deadline,
          async () => {
            pyFailed()
            group = await describeGroup(admin, groupId)
            return isStableSplit(group, topic, 3) && py2.lastAssignment() && py2.lastAssignment().partitions.length > 0
          },
          state
        )
        assert.deepEqual(group.members.map(m => m.clientId).sort(), ['aio-2', 'spool-compat-mixed', 'spool-compat-mixed'])
        assert.equal(group.protocol, 'RoundRobinAssigner')
        assert.equal(py2.assigns.length, 0, 'aio-2 did not lead')
        const leaders = kjs.flatMap(m => m.joins.filter(j => j.at >= py2Started && j.isLeader).map(() => m.name))
        assert.ok(leaders.length > 0, 'a kafkajs member led the generation aio-2 joined')
        const py2Member = group.members.find(m => m.clientId === 'aio-2')
        assert.deepEqual(
          py2.lastAssignment().partitions,
          partitionsOf(py2Member, topic).slice().sort((a, b) => a - b),
          'aio-2 decoded the kafkajs leader\'s assignment'
        )

        const records2 = makeRecords('mix2', MIXED_RECORDS_PER_PHASE)
        const prod2 = await produceInBackground({
          kafka,
          topic,
          records: records2,
          deadline,
          startOffsets: prod1.result.counts,
        })
        await waitUntil(
          'phase 2 records to be processed',
          deadline,
          () => {
            pyFailed()
            if (prod2.error) throw prod2.error
            return prod2.done && ledger.unique >= 2 * MIXED_RECORDS_PER_PHASE
          },
          state
        )
        keyIndex(records2, prod2.result.placements, keys)
        ledger.verify({ from: zero, to: prod2.result.counts, keyAt: (p, o) => keys.get(`${p}:${o}`), label: 'mixed' })
        assert.ok(ledger.count('aio-2') > 0, `aio-2 processed records: ${ledger.summary()}`)
        assert.ok(
          ledger.count('K1') + ledger.count('K2') > phase1.K1 + phase1.K2,
          `kafkajs members processed records in phase 2: ${ledger.summary()}`
        )

        const ends = await endOffsets(admin, topic)
        assert.deepEqual(ends, prod2.result.counts)
        assert.deepEqual(await committedOffsets(admin, groupId, topic), ends, 'committed offsets == end offsets')

        py2.stopRequested = true
        const exit2 = await py2.stop()
        assert.deepEqual(exit2, { code: 0, signal: null }, `aio-2 exit: ${py2.describe()}`)
        const kafkajsCommitErrors = kjs.map(m => m.commitErrors.length)
        for (const m of kjs) await m.stop()
        kjs.length = 0
        for (const p of pys) assert.deepEqual(p.protocolErrors, [], `${p.name} wrote non-JSON lines`)
        t.diagnostic(
          `processed: ${ledger.summary()}; aiokafka commit failures: ${pys.map(p => p.commitFailures.length)}; ` +
            `kafkajs commit errors: ${kafkajsCommitErrors}`
        )
      })
      await cleanup()
    }
  )
})
