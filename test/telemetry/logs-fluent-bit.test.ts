import { describe, test } from 'node:test'
import assert from 'node:assert/strict'
import fs from 'node:fs'
import path from 'node:path'
import { fileURLToPath } from 'node:url'
import { parse } from 'yaml'

/*
 * Fluent Bit cannot run here, so fluent-bit/ is checked as far as it can be without it:
 * the YAML parses, every section, plugin and property name is one the Fluent Bit docs
 * list (the lists below, with their sources), every ${VAR} has a default in the systemd
 * unit, and the routing leaves only stdout on by default. Property names are matched
 * case-insensitively, like Fluent Bit does.
 */
const DIR = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../fluent-bit')
const config = parse(fs.readFileSync(path.join(DIR, 'fluent-bit.yaml'), 'utf8')) as Record<string, unknown>
const unit = fs.readFileSync(path.join(DIR, 'gatehouse-fluent-bit.service'), 'utf8')
const envFile = fs.readFileSync(path.join(DIR, 'fluent-bit.env'), 'utf8')

type Section = Record<string, unknown>

// administration/configuring-fluent-bit/yaml/configuration-file.md (top-level sections).
const TOP = ['env', 'includes', 'service', 'pipeline', 'parsers', 'multiline_parsers', 'plugins', 'upstream_servers']
// administration/configuring-fluent-bit/yaml/service-section.md (keys and storage keys).
const SERVICE = ['flush', 'grace', 'daemon', 'dns.mode', 'log_file', 'log_level', 'parsers_file', 'plugins_file', 'streams_file',
  'http_server', 'http_listen', 'http_port', 'hot_reload', 'coro_stack_size', 'scheduler.cap', 'scheduler.base',
  'storage.path', 'storage.sync', 'storage.checksum', 'storage.max_chunks_up', 'storage.backlog.mem_limit', 'storage.metrics']
// pipeline/parsers/configuring-parser.md.
const PARSER = ['name', 'format', 'regex', 'time_key', 'time_format', 'time_offset', 'time_keep', 'time_system_timezone', 'types',
  'decode_field', 'decode_field_as', 'skip_empty_values', 'time_strict']
// Shared by every input: name, tag, alias, log_level (src/flb_input.c); mem_buf_limit
// (administration/backpressure.md); storage.type (administration/buffering-and-storage.md).
const INPUT_COMMON = ['name', 'tag', 'alias', 'log_level', 'mem_buf_limit', 'storage.type', 'threaded']
// Shared by every filter: name, match, match_regex, alias (src/flb_filter.c).
const FILTER_COMMON = ['name', 'match', 'match_regex', 'alias', 'log_level']
// Shared by every output (src/flb_output.c flb_output_set_property): match, match_regex,
// alias, host, port, retry_limit, tls.*; storage.total_limit_size
// (administration/buffering-and-storage.md); workers (administration/multithreading.md).
const OUTPUT_COMMON = ['name', 'match', 'match_regex', 'alias', 'log_level', 'host', 'port', 'retry_limit', 'storage.total_limit_size', 'workers',
  'tls', 'tls.verify', 'tls.debug', 'tls.vhost', 'tls.ca_path', 'tls.ca_file', 'tls.crt_file', 'tls.key_file', 'tls.key_passwd']

const INPUTS: Record<string, string[]> = {
  // pipeline/inputs/tail.md
  tail: ['buffer_chunk_size', 'buffer_max_size', 'path', 'path_key', 'exclude_path', 'offset_key', 'read_from_head', 'refresh_interval',
    'rotate_wait', 'ignore_older', 'skip_long_lines', 'skip_empty_lines', 'db', 'db.sync', 'db.locking', 'db.journal_mode',
    'db.compare_filename', 'exit_on_eof', 'parser', 'key', 'inotify_watcher', 'tag_regex', 'static_batch_size', 'multiline.parser'],
}
const FILTERS: Record<string, string[]> = {
  // pipeline/filters/record-modifier.md
  record_modifier: ['record', 'remove_key', 'allowlist_key', 'whitelist_key'],
}
const OUTPUTS: Record<string, string[]> = {
  // pipeline/outputs/standard-output.md
  stdout: ['format', 'json_date_key', 'json_date_format'],
  // pipeline/outputs/file.md
  file: ['path', 'file', 'format', 'mkdir', 'delimiter', 'label_delimiter', 'template'],
  // pipeline/outputs/forward.md
  forward: ['time_as_integer', 'upstream', 'unix_path', 'tag', 'send_options', 'require_ack_response', 'compress', 'shared_key',
    'empty_shared_key', 'username', 'password', 'self_hostname'],
  // pipeline/outputs/http.md
  http: ['http_user', 'http_passwd', 'aws_auth', 'aws_service', 'aws_region', 'aws_sts_endpoint', 'aws_role_arn', 'aws_external_id',
    'proxy', 'uri', 'compress', 'format', 'allow_duplicated_headers', 'log_response_payload', 'header_tag', 'header', 'json_date_key',
    'json_date_format', 'gelf_timestamp_key', 'gelf_host_key', 'gelf_short_message_key', 'gelf_full_message_key', 'gelf_level_key',
    'body_key', 'headers_key'],
  // pipeline/outputs/splunk.md
  splunk: ['splunk_token', 'http_user', 'http_passwd', 'http_buffer_size', 'compress', 'channel', 'http_debug_bad_request',
    'splunk_send_raw', 'event_key', 'event_host', 'event_source', 'event_sourcetype', 'event_sourcetype_key', 'event_index',
    'event_index_key', 'event_field'],
  // pipeline/outputs/new-relic.md
  nrlogs: ['base_uri', 'api_key', 'license_key', 'compress'],
  // pipeline/outputs/opentelemetry.md
  opentelemetry: ['http_user', 'http_passwd', 'proxy', 'http2', 'grpc', 'metrics_uri', 'logs_uri', 'traces_uri', 'header',
    'log_response_payload', 'logs_body_key', 'logs_trace_id_message_key', 'logs_span_id_message_key', 'logs_severity_text_message_key',
    'logs_severity_number_message_key', 'add_label', 'compress', 'logs_observed_timestamp_metadata_key', 'logs_timestamp_metadata_key',
    'logs_severity_key_metadata_key', 'logs_severity_number_metadata_key', 'logs_trace_flags_metadata_key', 'logs_span_id_metadata_key',
    'logs_trace_id_metadata_key', 'logs_attributes_metadata_key', 'logs_body_key_attributes'],
}

function unknownKeys(section: Section, allowed: string[]): string[] {
  const ok = new Set(allowed.map((k) => k.toLowerCase()))
  return Object.keys(section).filter((k) => !ok.has(k.toLowerCase()))
}

const pipeline = config.pipeline as { inputs: Section[]; filters: Section[]; outputs: Section[] }

/** Environment= defaults of the unit: NAME → value. */
const unitEnv = new Map<string, string>()
for (const m of unit.matchAll(/^Environment="?([A-Z0-9_]+)=([^"\n]*)"?$/gm)) unitEnv.set(m[1]!, m[2]!)

describe('fluent-bit/fluent-bit.yaml', () => {
  test('uses only documented top-level sections and service keys', () => {
    assert.deepEqual(unknownKeys(config, TOP), [])
    assert.deepEqual(unknownKeys(config.service as Section, SERVICE), [])
  })

  test('declares the JSON parser its inputs use (YAML configs load none by default)', () => {
    const parsers = config.parsers as Section[]
    for (const p of parsers) assert.deepEqual(unknownKeys(p, PARSER), [], `parser ${String(p.name)}`)
    const names = new Set(parsers.map((p) => p.name))
    for (const i of pipeline.inputs) assert.ok(names.has(i.parser), `parser ${String(i.parser)} is declared`)
    assert.equal(parsers.find((p) => p.name === 'gatehouse_json')!.format, 'json')
  })

  test('every input, filter and output is a documented plugin with documented properties', () => {
    for (const [list, plugins, common] of [
      [pipeline.inputs, INPUTS, INPUT_COMMON], [pipeline.filters, FILTERS, FILTER_COMMON], [pipeline.outputs, OUTPUTS, OUTPUT_COMMON],
    ] as const) {
      for (const s of list) {
        const name = String(s.name)
        assert.ok(name in plugins, `plugin ${name} is in the checked list`)
        assert.deepEqual(unknownKeys(s, [...common, ...plugins[name]!]), [], `properties of ${name}`)
      }
    }
    assert.deepEqual(pipeline.outputs.map((o) => o.name), ['stdout', 'file', 'forward', 'http', 'splunk', 'nrlogs', 'opentelemetry'])
  })

  test('tails both logs with an offsets DB each and rotation handling', () => {
    const byTag = new Map(pipeline.inputs.map((i) => [i.tag, i]))
    assert.equal(byTag.get('gatehouse.access')!.path, '${GH_FB_LOG_DIR}/access.log')
    assert.equal(byTag.get('gatehouse.runtime')!.path, '${GH_FB_LOG_DIR}/runtime.log')
    const dbs = pipeline.inputs.map((i) => i.db)
    assert.equal(new Set(dbs).size, 2)
    for (const i of pipeline.inputs) {
      assert.ok(Number(i.rotate_wait) > 0 && Number(i.refresh_interval) > 0)
      assert.equal(i['storage.type'], 'filesystem')
    }
  })

  test('adds host and service fields to both logs', () => {
    const rm = pipeline.filters.find((f) => f.name === 'record_modifier')!
    assert.equal(rm.match, 'gatehouse.*')
    assert.deepEqual(rm.record, ['host ${HOSTNAME}', 'service ${GH_FB_SERVICE}'])
  })

  test('every ${VAR} has a default in the unit, and only stdout is on by default', () => {
    const text = fs.readFileSync(path.join(DIR, 'fluent-bit.yaml'), 'utf8').replace(/^\s*#.*$/gm, '')
    const used = new Set([...text.matchAll(/\$\{([A-Za-z0-9_]+)\}/g)].map((m) => m[1]!))
    used.delete('HOSTNAME') // predefined by Fluent Bit (yaml/environment-variables-section.md)
    for (const v of used) assert.ok(unitEnv.has(v), `${v} has an Environment= default`)
    for (const o of pipeline.outputs) {
      const m = /^\$\{(GH_FB_[A-Z]+_MATCH)\}$/.exec(String(o.match))
      assert.ok(m !== null, `${String(o.name)} is routed by a variable`)
      assert.equal(unitEnv.get(m[1]!), o.name === 'stdout' ? 'gatehouse.*' : 'none', `${m[1]} default`)
    }
    // The operator's override file only names variables the config reads.
    for (const m of envFile.matchAll(/^# (GH_FB_[A-Z_]+)=/gm)) assert.ok(used.has(m[1]!) || m[1] === 'GH_FB_STATE_DIR', `${m[1]} is used`)
  })
})

describe('fluent-bit/gatehouse-fluent-bit.service', () => {
  test('runs Fluent Bit with the installed config after gatehouse, with the override file', () => {
    assert.match(unit, /^ExecStart=\/opt\/fluent-bit\/bin\/fluent-bit -c \/etc\/gatehouse\/fluent-bit\/fluent-bit\.yaml$/m)
    assert.match(unit, /^After=.*\bgatehouse\.service\b/m)
    assert.match(unit, /^EnvironmentFile=-\/etc\/gatehouse\/fluent-bit\/fluent-bit\.env$/m)
    assert.match(unit, /^StateDirectory=gatehouse-fluent-bit$/m)
    assert.equal(unitEnv.get('GH_FB_STATE_DIR'), '/var/lib/gatehouse-fluent-bit')
    assert.equal(unitEnv.get('GH_FB_LOG_DIR'), '/var/log/gatehouse')
    assert.match(unit, /^WantedBy=multi-user\.target$/m)
  })
})
