/**
 * The primary's start-up check of net.ipv4.tcp_migrate_req, on files standing in for the
 * sysctl (the real value is asserted through /status in test/integration/overload.test.ts;
 * this host's value cannot be changed by a test).
 */
import { after, describe, test } from 'node:test'
import assert from 'node:assert/strict'
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { readTcpMigrateReq, systemWarnings, TCP_MIGRATE_REQ_PATH } from '../../src/primary/system-check.js'

const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'gh-sysctl-'))
after(() => fs.rmSync(dir, { recursive: true, force: true }))
function file(content: string): string {
  const p = path.join(dir, `v${Math.random().toString(36).slice(2)}`)
  fs.writeFileSync(p, content)
  return p
}

describe('tcp_migrate_req', () => {
  test('reads the value as the kernel writes it (digits and a newline), null when absent or garbled', () => {
    assert.equal(readTcpMigrateReq(file('1\n')), 1)
    assert.equal(readTcpMigrateReq(file('0\n')), 0)
    assert.equal(readTcpMigrateReq(path.join(dir, 'missing')), null)
    assert.equal(readTcpMigrateReq(file('')), null)
  })

  test('reads the real sysctl by default', () => {
    let want: number | null = null
    try { want = Number(fs.readFileSync(TCP_MIGRATE_REQ_PATH, 'utf8').trim()) } catch {}
    assert.equal(readTcpMigrateReq(), want)
  })

  test('0 warns with the consequence and both fixes (sysctl -w and a sysctl.d file)', () => {
    const w = systemWarnings({ tcpMigrateReq: 0 })
    assert.equal(w.length, 1)
    assert.equal(w[0]!.code, 'GH_WRN_TCP_MIGRATE_REQ')
    assert.match(w[0]!.message, /resets the connections queued/)
    assert.match(w[0]!.message, /sysctl -w net\.ipv4\.tcp_migrate_req=1/)
    assert.match(w[0]!.message, /\/etc\/sysctl\.d\//)
  })

  test('a missing key warns too (kernel older than 5.14); 1 does not warn', () => {
    const w = systemWarnings({ tcpMigrateReq: null })
    assert.deepEqual(w.map((x) => x.code), ['GH_WRN_TCP_MIGRATE_REQ'])
    assert.match(w[0]!.message, /5\.14/)
    assert.deepEqual(systemWarnings({ tcpMigrateReq: 1 }), [])
  })
})
