'use strict'

// kafkajs over spool's SASL_PLAINTEXT listener with PLAIN (a user of the listener's JAAS text),
// SCRAM-SHA-256 and SCRAM-SHA-512 (users added with `spool user add` through the PLAINTEXT
// listener, which nodes use between themselves): each produces and consumes 50 records. A wrong
// password and an unknown user are refused.

const { describe, test, before, after } = require('node:test')
const assert = require('assert/strict')
const net = require('net')
const path = require('path')
const { execFileSync } = require('child_process')

const { createKafka, withBrokerLogs, startBroker, stopBroker, produceAndReadBack } = require('./lib/harness')

const TEST_TIMEOUT_MS = 120000
const RECORDS = 50
const REPO_ROOT = path.resolve(__dirname, '..', '..', '..')
const SPOOL_BIN = process.env.SPOOL_BIN || path.join(REPO_ROOT, 'target', 'debug', 'spool')

function freePort() {
  return new Promise((resolve, reject) => {
    const server = net.createServer()
    server.once('error', reject)
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address()
      server.close(() => resolve(port))
    })
  })
}

async function roundTrip(spool, sasl) {
  const kafka = createKafka(spool, `spool-compat-sasl-${sasl.mechanism}`, { sasl })
  const messages = Array.from({ length: RECORDS }, (_, i) => ({ key: `k${i}`, value: `v${i}`, partition: 0 }))
  const got = await produceAndReadBack(kafka, 'compat-node-sasl', messages)
  assert.deepEqual(got, messages.map(m => `${m.key}=${m.value}`))
}

describe('kafkajs over SASL', { timeout: 5 * 60 * 1000 }, () => {
  let spool = null
  let plaintext = null

  before(async () => {
    plaintext = `127.0.0.1:${await freePort()}`
    spool = await startBroker({
      listeners: `SASL_PLAINTEXT://127.0.0.1:0,PLAINTEXT://${plaintext}`,
      settings: {
        'listener.security.protocol.map': 'SASL_PLAINTEXT:SASL_PLAINTEXT,PLAINTEXT:PLAINTEXT',
        'inter.broker.listener.name': 'PLAINTEXT',
        'sasl.enabled.mechanisms': 'PLAIN,SCRAM-SHA-256,SCRAM-SHA-512',
        'listener.name.sasl_plaintext.plain.sasl.jaas.config':
          'org.apache.kafka.common.security.plain.PlainLoginModule required user_alice="alice-secret";',
      },
    })
    for (const mechanism of ['SCRAM-SHA-256', 'SCRAM-SHA-512']) {
      execFileSync(SPOOL_BIN, ['user', 'add', 'bob', '--mechanism', mechanism, '--password', 'bob-secret',
        '--bootstrap-server', plaintext], { stdio: 'pipe', timeout: 60000 })
    }
  })

  after(async () => {
    await stopBroker(spool)
  })

  for (const mechanism of ['plain', 'scram-sha-256', 'scram-sha-512']) {
    test(`${RECORDS} records over ${mechanism}`, { timeout: TEST_TIMEOUT_MS }, async t => {
      await withBrokerLogs(t, spool, async () => {
        const sasl = mechanism === 'plain'
          ? { mechanism, username: 'alice', password: 'alice-secret' }
          : { mechanism, username: 'bob', password: 'bob-secret' }
        await roundTrip(spool, sasl)
      })
    })
  }

  test('a wrong password and an unknown user are refused', { timeout: TEST_TIMEOUT_MS }, async t => {
    await withBrokerLogs(t, spool, async () => {
      const cases = [
        { mechanism: 'plain', username: 'alice', password: 'wrong' },
        { mechanism: 'scram-sha-512', username: 'bob', password: 'wrong' },
        { mechanism: 'scram-sha-256', username: 'nobody', password: 'x' },
      ]
      for (const sasl of cases) {
        const admin = createKafka(spool, 'spool-compat-sasl-refused', { sasl, retry: { retries: 0 } }).admin()
        await assert.rejects(async () => {
          await admin.connect()
          await admin.listTopics()
        }, /SASL|authentication/i)
        await admin.disconnect().catch(() => {})
      }
    })
  })
})
