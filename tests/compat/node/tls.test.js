'use strict'

// kafkajs over spool's SSL listener with mutual TLS (ssl.client.auth=required): a CA, the
// broker's certificate for 127.0.0.1 and a client certificate are made with the openssl
// command-line tool; the client produces 100 records and a consumer group reads them all back.
// A client without a certificate, and one that does not trust the broker's CA, cannot connect.

const { describe, test, before, after } = require('node:test')
const assert = require('assert/strict')
const fs = require('fs')
const os = require('os')
const path = require('path')
const { execFileSync } = require('child_process')

const { createKafka, withBrokerLogs, startBroker, stopBroker, produceAndReadBack } = require('./lib/harness')

const TEST_TIMEOUT_MS = 120000
const RECORDS = 100

function openssl(dir, ...args) {
  execFileSync('openssl', args, { cwd: dir, stdio: 'pipe', timeout: 60000 })
}

const EC = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes']

function makeCa(dir, name) {
  openssl(dir, 'req', '-x509', ...EC, '-keyout', `${name}.key`, '-out', `${name}.pem`, '-days', '2',
    '-subj', `/CN=${name}`, '-addext', 'basicConstraints=critical,CA:TRUE')
}

function makeCert(dir, name, ext) {
  fs.writeFileSync(path.join(dir, `${name}.ext`), ext)
  openssl(dir, 'req', ...EC, '-keyout', `${name}.key`, '-out', `${name}.csr`, '-subj', `/CN=${name}`)
  openssl(dir, 'x509', '-req', '-in', `${name}.csr`, '-CA', 'ca.pem', '-CAkey', 'ca.key',
    '-CAcreateserial', '-out', `${name}.pem`, '-days', '2', '-extfile', `${name}.ext`)
}

describe('kafkajs over mutual TLS', { timeout: 5 * 60 * 1000 }, () => {
  let spool = null
  let dir = null
  const read = name => fs.readFileSync(path.join(dir, name))

  before(async () => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'spool-compat-tls-'))
    makeCa(dir, 'ca')
    makeCa(dir, 'other-ca')
    makeCert(dir, 'broker', 'subjectAltName=IP:127.0.0.1\nextendedKeyUsage=serverAuth\n')
    makeCert(dir, 'client', 'extendedKeyUsage=clientAuth\n')
    fs.writeFileSync(path.join(dir, 'keystore.pem'), Buffer.concat([read('broker.key'), read('broker.pem')]))
    spool = await startBroker({
      listeners: 'SSL://127.0.0.1:0,PLAINTEXT://127.0.0.1:0',
      settings: {
        'ssl.keystore.location': path.join(dir, 'keystore.pem'),
        'ssl.truststore.location': path.join(dir, 'ca.pem'),
        'ssl.client.auth': 'required',
      },
    })
  })

  after(async () => {
    await stopBroker(spool)
    if (dir) fs.rmSync(dir, { recursive: true, force: true })
  })

  test(`${RECORDS} records produced and consumed over TLS`, { timeout: TEST_TIMEOUT_MS }, async t => {
    await withBrokerLogs(t, spool, async () => {
      const ssl = { ca: [read('ca.pem')], cert: read('client.pem'), key: read('client.key') }
      const kafka = createKafka(spool, 'spool-compat-tls', { ssl })
      const messages = Array.from({ length: RECORDS }, (_, i) => ({ key: `k${i}`, value: `v${i}`, partition: 0 }))
      const got = await produceAndReadBack(kafka, 'compat-node-tls', messages)
      assert.deepEqual(got, messages.map(m => `${m.key}=${m.value}`))
    })
  })

  test('no client certificate, or an untrusted broker, cannot connect', { timeout: TEST_TIMEOUT_MS }, async t => {
    await withBrokerLogs(t, spool, async () => {
      const cases = [
        { ca: [read('ca.pem')] },
        { ca: [read('other-ca.pem')], cert: read('client.pem'), key: read('client.key') },
      ]
      for (const ssl of cases) {
        const admin = createKafka(spool, 'spool-compat-tls-refused', {
          ssl,
          retry: { retries: 0 },
        }).admin()
        await assert.rejects(async () => {
          await admin.connect()
          await admin.listTopics()
        })
        await admin.disconnect().catch(() => {})
      }
    })
  })
})
