/**
 * The primary's V8 flags (src/primary/v8-flags.ts). v8.setFlagsFromString accepts a flag
 * this V8 does not know with only a line on stderr, so a Node upgrade that dropped or
 * renamed one would silently undo the setting: each must be one this node accepts on its
 * command line (where an unknown flag is an error). What the flags do to the primary's
 * memory is measured, not tested (no RSS or heap-size thresholds in tests).
 */
import { describe, test } from 'node:test'
import assert from 'node:assert/strict'
import { spawnSync } from 'node:child_process'
import { PRIMARY_V8_FLAGS } from '../../src/primary/v8-flags.js'

describe('primary V8 flags', () => {
  test('there is at least one, and this node knows each of them', () => {
    assert.ok(PRIMARY_V8_FLAGS.length > 0)
    for (const flag of PRIMARY_V8_FLAGS) {
      const r = spawnSync(process.execPath, [flag, '-e', '0'], { encoding: 'utf8', env: { ...process.env, NODE_OPTIONS: '' } })
      assert.equal(r.status, 0, `${flag}: ${r.stderr}`)
      assert.equal(r.stderr, '', flag)
    }
  })

  test('an unknown flag is refused the same way (the check above can fail)', () => {
    const r = spawnSync(process.execPath, ['--no-such-v8-flag-gatehouse', '-e', '0'], { encoding: 'utf8', env: { ...process.env, NODE_OPTIONS: '' } })
    assert.notEqual(r.status, 0)
  })
})
