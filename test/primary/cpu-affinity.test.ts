import assert from 'node:assert/strict'
import { execFileSync, spawn, type ChildProcess } from 'node:child_process'
import { once } from 'node:events'
import { after, describe, test } from 'node:test'
import { allowedCpus, cpuOf, parseCpuList, pinToCpu } from '../../src/primary/cpu-affinity.js'

const children: ChildProcess[] = []
after(() => {
  // Only the children this file spawned, by their PID.
  for (const c of children) if (c.exitCode === null && c.signalCode === null) c.kill()
})

async function sleeper(): Promise<number> {
  const child = spawn('sleep', ['5'], { stdio: 'ignore' })
  children.push(child)
  await once(child, 'spawn')
  return child.pid!
}

describe('parseCpuList', () => {
  test('expands ranges and singles into a sorted list', () => {
    assert.deepEqual(parseCpuList('0-3,6'), [0, 1, 2, 3, 6])
    assert.deepEqual(parseCpuList('5'), [5])
    assert.deepEqual(parseCpuList('8-9,0\n'), [0, 8, 9])
  })
  test('rejects malformed lists instead of guessing', () => {
    for (const bad of ['', '3-1', 'a', '1,,2', '0-']) assert.equal(parseCpuList(bad), null, JSON.stringify(bad))
  })
})

describe('allowedCpus', () => {
  test('is non-empty and has as many CPUs as nproc reports', () => {
    const cpus = allowedCpus()
    assert.ok(cpus.length > 0)
    // nproc honours OMP_NUM_THREADS/OMP_THREAD_LIMIT; clear them so it reports the affinity mask.
    const env = { ...process.env }
    delete env.OMP_NUM_THREADS
    delete env.OMP_THREAD_LIMIT
    const nproc = Number(execFileSync('nproc', { env, encoding: 'utf8' }).trim())
    assert.equal(cpus.length, nproc)
    assert.deepEqual(cpus, [...new Set(cpus)].sort((a, b) => a - b))
  })
  test('matches cpuOf(process.pid)', () => {
    assert.deepEqual(cpuOf(process.pid), allowedCpus())
  })
})

describe('pinToCpu', () => {
  test('pins a running child to one CPU, as cpuOf then shows', async () => {
    const pid = await sleeper()
    const cpu = allowedCpus()[0]!
    const res = await pinToCpu(pid, cpu)
    assert.deepEqual(res, { ok: true })
    assert.deepEqual(cpuOf(pid), [cpu])
  })

  test('pins to the last allowed CPU too', async () => {
    const pid = await sleeper()
    const cpus = allowedCpus()
    const cpu = cpus[cpus.length - 1]!
    assert.deepEqual(await pinToCpu(pid, cpu), { ok: true })
    assert.deepEqual(cpuOf(pid), [cpu])
  })

  test('a nonexistent pid comes back as ok:false with a reason', async () => {
    // pid_max is at most 2^22 on Linux, so this pid cannot exist.
    const res = await pinToCpu(4_194_305, allowedCpus()[0]!)
    assert.equal(res.ok, false)
    assert.ok(!res.ok && res.reason.length > 0)
    assert.match((res as { reason: string }).reason, /No such process|failed/)
  })

  test('a CPU outside the allowed set comes back as ok:false', async () => {
    const pid = await sleeper()
    const res = await pinToCpu(pid, Math.max(...allowedCpus()) + 1024)
    assert.equal(res.ok, false)
  })

  test('invalid arguments are rejected without running taskset', async () => {
    assert.equal((await pinToCpu(-1, 0)).ok, false)
    assert.equal((await pinToCpu(1.5, 0)).ok, false)
    assert.equal((await pinToCpu(process.pid, -1)).ok, false)
  })

  test('a missing taskset is a reason, not a throw', async () => {
    const saved = process.env.PATH
    process.env.PATH = '/nonexistent-gh-bin'
    try {
      const res = await pinToCpu(process.pid, allowedCpus()[0]!)
      assert.deepEqual(res, { ok: false, reason: 'taskset (util-linux) is not in PATH' })
    } finally {
      process.env.PATH = saved
    }
  })
})

describe('cpuOf', () => {
  test('is null for a pid that does not exist or is invalid', () => {
    assert.equal(cpuOf(4_194_305), null)
    assert.equal(cpuOf(0), null)
    assert.equal(cpuOf(Number.NaN), null)
  })
})
