'use strict'

// Start / stop a spool broker for the compatibility tests.
//
// Contract with the binary:
//   $SPOOL_BIN serve --listeners 127.0.0.1:0 --data-dir <dir> --ready-file <file> [--set k=v ...]
// (a restart passes --listeners 127.0.0.1:<port the first start picked> and the same data dir)
// Once it accepts connections it writes "127.0.0.1:PORT\n" to the ready file
// (atomically, via rename). SIGTERM shuts it down gracefully. Logs go to
// stderr; we capture stdout+stderr into <tmp>/spool.log.

const fs = require('fs')
const os = require('os')
const path = require('path')
const { spawn } = require('child_process')

const REPO_ROOT = path.resolve(__dirname, '..', '..', '..', '..')
const SPOOL_BIN = process.env.SPOOL_BIN || path.join(REPO_ROOT, 'target', 'debug', 'spool')

const POLL_INTERVAL_MS = 20
const DEFAULT_READY_TIMEOUT_MS = Number(process.env.SPOOL_READY_TIMEOUT_MS || 30000)
const DEFAULT_STOP_TIMEOUT_MS = 10000
const KILL_WAIT_MS = 5000

const sleep = ms => new Promise(resolve => setTimeout(resolve, ms))

const tailFile = (file, maxLines = 80) => {
  try {
    // strip ANSI colour sequences in case the broker colours its log anyway
    const text = fs.readFileSync(file, 'utf8').replace(/\x1b\[[0-9;]*m/g, '')
    const lines = text.split('\n')
    return lines.slice(-maxLines - 1).join('\n')
  } catch (e) {
    return `<could not read ${file}: ${e.message}>`
  }
}

// Children still alive when this process exits get SIGKILLed.
const liveChildren = new Set()
process.on('exit', () => {
  for (const child of liveChildren) {
    try {
      child.kill('SIGKILL')
    } catch (_) {
      // already gone
    }
  }
})

/**
 * Start a broker in a fresh temp dir and wait until it is ready.
 *
 * @param {object} [opts]
 * @param {Record<string,string|number|boolean>} [opts.settings] passed as --set key=value
 * @param {number} [opts.readyTimeoutMs]
 * @param {string} [opts.listeners] `--listeners` (default 127.0.0.1:0; the ready file names the first)
 * @returns {Promise<Spool>}
 */
async function startSpool({
  settings = {},
  readyTimeoutMs = DEFAULT_READY_TIMEOUT_MS,
  listeners = '127.0.0.1:0',
} = {}) {
  checkBinary()
  const tmpDir = fs.mkdtempSync(path.join(os.tmpdir(), 'spool-compat-node-'))
  const dataDir = path.join(tmpDir, 'data')
  fs.mkdirSync(dataDir)
  return launch({ tmpDir, dataDir, listeners, settings, readyTimeoutMs, generation: 0 })
}

function checkBinary() {
  try {
    fs.accessSync(SPOOL_BIN, fs.constants.X_OK)
  } catch (e) {
    throw new Error(
      `spool binary not found or not executable at ${SPOOL_BIN} (set SPOOL_BIN, or build it first): ${e.message}`
    )
  }
}

/**
 * Stop `spool` (SIGTERM; it must exit with code 0 unless requireGraceful is
 * false) and start the binary again on the same port and data dir:
 * `--listeners <host>:<port>` with the port the first start picked. The log
 * goes on in the same spool.log. A port taken in the meantime (EADDRINUSE) is
 * retried for up to `bindRetryMs`. Resolves to a new handle (same tmpDir,
 * dataDir, logFile, port; `generation` counts the restarts) with `lastStop`
 * set to the stop result.
 */
async function restartSpool(
  spool,
  {
    settings = spool.settings,
    readyTimeoutMs = DEFAULT_READY_TIMEOUT_MS,
    requireGraceful = true,
    bindRetryMs = 5000,
  } = {}
) {
  if (!spool.port) throw new Error('restart: the broker never became ready, no port to reuse')
  const stopped = await spool.stop()
  if (requireGraceful && !stopped.graceful) {
    throw new Error(
      `restart: spool did not shut down gracefully on SIGTERM: ${JSON.stringify(stopped)}\n` +
        `--- ${spool.logFile} (tail) ---\n${spool.logTail(60)}`
    )
  }
  checkBinary()
  const listeners = `${spool.host}:${spool.port}`
  const deadline = Date.now() + bindRetryMs
  for (let attempt = 1; ; attempt++) {
    try {
      const next = await launch({
        tmpDir: spool.tmpDir,
        dataDir: spool.dataDir,
        listeners,
        settings,
        readyTimeoutMs,
        generation: spool.generation + 1,
      })
      next.lastStop = stopped
      next.failed = spool.failed
      if (next.address !== listeners) {
        await next.stop({ timeoutMs: 2000 }).catch(() => {})
        throw new Error(`restart: asked for ${listeners}, the broker reported ${next.address}`)
      }
      return next
    } catch (e) {
      const inUse = /address already in use|AddrInUse|EADDRINUSE|os error 98/i.test(e.message)
      if (!inUse || Date.now() > deadline) throw e
      await sleep(200 * Math.min(attempt, 5))
    }
  }
}

/** Spawn the binary on an existing tmpDir/dataDir and wait for its ready file. */
async function launch({ tmpDir, dataDir, listeners, settings, readyTimeoutMs, generation }) {
  const readyFile = path.join(tmpDir, 'ready')
  const logFile = path.join(tmpDir, 'spool.log')
  // a restart must not mistake the previous run's ready file for its own
  fs.rmSync(readyFile, { force: true })
  if (generation > 0) {
    fs.appendFileSync(logFile, `\n===== spool restart #${generation} on ${listeners} =====\n`)
  }

  const args = [
    'serve',
    '--listeners',
    listeners,
    '--data-dir',
    dataDir,
    '--ready-file',
    readyFile,
  ]
  for (const [key, value] of Object.entries(settings)) {
    args.push('--set', `${key}=${value}`)
  }

  const logFd = fs.openSync(logFile, 'a')
  let child
  try {
    child = spawn(SPOOL_BIN, args, {
      stdio: ['ignore', logFd, logFd],
      env: { RUST_BACKTRACE: '1', NO_COLOR: '1', ...process.env },
    })
  } finally {
    fs.closeSync(logFd) // the child has its own copy
  }
  liveChildren.add(child)

  let exitInfo = null
  let spawnError = null
  const exited = new Promise(resolve => {
    child.once('exit', (code, signal) => {
      exitInfo = { code, signal }
      liveChildren.delete(child)
      resolve(exitInfo)
    })
    child.once('error', err => {
      spawnError = err
      exitInfo = exitInfo || { code: null, signal: null, error: err }
      liveChildren.delete(child)
      resolve(exitInfo)
    })
  })

  const spool = {
    bin: SPOOL_BIN,
    args,
    settings,
    generation,
    tmpDir,
    dataDir,
    readyFile,
    logFile,
    child,
    pid: child.pid,
    host: null,
    port: null,
    address: null,
    brokers: null,
    logTail: (n = 80) => tailFile(logFile, n),
    exitInfo: () => exitInfo,
    stop: opts => stopSpool(spool, exited, () => exitInfo, opts),
    restart: opts => restartSpool(spool, opts),
  }

  // Poll the ready file until the deadline. The broker writes it atomically
  // (rename), but tolerate a partially visible / empty file anyway.
  const deadline = Date.now() + readyTimeoutMs
  for (let i = 0; ; i++) {
    if (exitInfo || spawnError) {
      throw new Error(
        `spool exited before becoming ready (${JSON.stringify(exitInfo)}${
          spawnError ? `, spawn error: ${spawnError.message}` : ''
        })\ncommand: ${SPOOL_BIN} ${args.join(' ')}\n--- ${logFile} (tail) ---\n${spool.logTail()}`
      )
    }
    let content = null
    try {
      content = fs.readFileSync(readyFile, 'utf8')
    } catch (e) {
      if (e.code !== 'ENOENT') throw e
    }
    if (content !== null) {
      const match = /^\s*(\S+):(\d+)\s*$/.exec(content)
      if (match) {
        spool.host = match[1]
        spool.port = Number(match[2])
        spool.address = `${spool.host}:${spool.port}`
        spool.brokers = [spool.address]
        return spool
      }
    }
    if (Date.now() > deadline) {
      await spool.stop({ timeoutMs: 2000 }).catch(() => {})
      throw new Error(
        `spool did not write a valid ready file within ${readyTimeoutMs} ms ` +
          `(content: ${JSON.stringify(content)}; ${i} polls)\n` +
          `command: ${SPOOL_BIN} ${args.join(' ')}\n--- ${logFile} (tail) ---\n${spool.logTail()}`
      )
    }
    await sleep(POLL_INTERVAL_MS)
  }
}

const waitFor = (promise, ms) =>
  new Promise(resolve => {
    const timer = setTimeout(() => resolve(null), ms)
    promise.then(value => {
      clearTimeout(timer)
      resolve(value)
    })
  })

/**
 * SIGTERM, wait up to timeoutMs, then SIGKILL (and wait up to 5 s more).
 * Resolves to { code, signal, graceful, killed, elapsedMs }.
 * `graceful` is true iff the process exited with code 0 after SIGTERM.
 */
async function stopSpool(spool, exited, getExitInfo, { timeoutMs = DEFAULT_STOP_TIMEOUT_MS, removeTmp = false } = {}) {
  const started = Date.now()
  let killed = false
  let info = getExitInfo()
  const alreadyExited = !!info
  if (!info) {
    try {
      spool.child.kill('SIGTERM')
    } catch (_) {
      // ignore
    }
    info = await waitFor(exited, timeoutMs)
    if (!info) {
      killed = true
      try {
        spool.child.kill('SIGKILL')
      } catch (_) {
        // ignore
      }
      info = (await waitFor(exited, KILL_WAIT_MS)) || { code: null, signal: 'SIGKILL?' }
    }
  }
  if (removeTmp && !process.env.SPOOL_KEEP_TMP) {
    fs.rmSync(spool.tmpDir, { recursive: true, force: true })
  }
  return {
    code: info.code,
    signal: info.signal,
    alreadyExited,
    killed,
    graceful: !alreadyExited && !killed && info.code === 0,
    elapsedMs: Date.now() - started,
  }
}

module.exports = { startSpool, restartSpool, SPOOL_BIN, REPO_ROOT, sleep, tailFile }
