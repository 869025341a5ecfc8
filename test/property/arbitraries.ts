/**
 * fast-check arbitraries shared by the property tests (test/property/*.test.ts,
 * test/integration/property-headers.test.ts) and the long-running fuzz scripts
 * (test/fuzz/*.mjs): config directories for the loader, and request header sets for the
 * gateway. Generators only; the oracles live in config-oracle.ts and header-rig.ts.
 */
import fc from 'fast-check'
import { stringify } from 'yaml'

// ── config: what a config directory may contain ──────────────────────────────────────

export const API_VERSION = 'gatehouse/v1'
export const KIND_NAMES = ['ApiInstance', 'Service', 'PolicyBinding', 'Configuration'] as const
export const POLICY_NAMES = [
  'api-key', 'cors', 'header-injection', 'header-removal', 'http-basic-authentication', 'ip-filter',
  'json-threat-protection', 'jwt-validation', 'oauth2-introspection', 'rate-limit', 'spike-control',
] as const

/** Variables the config arbitraries reference; pass them as the loader's `env`. */
export const FUZZ_ENV: Readonly<Record<string, string>> = Object.freeze({
  GH_FUZZ_JWT_SECRET: 'a-hmac-secret-of-at-least-32-bytes!!',
  GH_FUZZ_ADMIN_TOKEN: 'admin-token',
  GH_FUZZ_CLIENT_SECRET: 'client-secret',
  GH_FUZZ_OTLP_TOKEN: 'Bearer otlp',
  GH_FUZZ_EMPTY: '',
})

/** A directory's files: name → text or bytes. */
export type ConfigFiles = Record<string, string | Uint8Array>

/** Every field name the kinds and policies know, for inserted/renamed keys and spec shapes. */
export const FIELD_NAMES = [
  'apiVersion', 'kind', 'metadata', 'name', 'labels', 'spec',
  'address', 'tls', 'certFile', 'keyFile', 'passphrase', 'services', 'service', 'endpoints', 'routes', 'rules', 'weight',
  'path', 'methods', 'host', 'headers', 'policies', 'policyRef', 'config', 'order', 'maxRequestBodyBytes', 'preserveHost',
  'url', 'loadBalancing', 'timeouts', 'connectMs', 'responseMs', 'retries', 'keepAliveTimeoutMs', 'connectionsPerEndpoint',
  'healthChecks', 'passive', 'active', 'consecutiveFailures', 'baseEjectionMs', 'maxEjectionMs', 'intervalMs', 'timeoutMs',
  'healthyThreshold', 'unhealthyThreshold', 'expectedStatus', 'targetRef',
  'workers', 'sharedStorage', 'redis', 'username', 'password', 'db', 'sentinel', 'addresses', 'commandTimeoutMs',
  'logging', 'runtimeLogs', 'logLevel', 'accessLogs', 'enabled', 'includeQuery', 'directory', 'metrics', 'tracing',
  'endpoint', 'sampling', 'serviceName', 'resourceAttributes', 'admin', 'token', 'drainTimeoutMs', 'heartbeat', 'misses',
  'watch', 'trustedProxies', 'limits', 'maxUrlBytes', 'maxHeaderBytes', 'maxHeaderCount',
  // policy options
  'allowOrigins', 'allowOriginPatterns', 'allowMethods', 'allowHeaders', 'exposeHeaders', 'allowCredentials', 'maxAgeSeconds',
  'rejectUnknownOrigins', 'requestHeaders', 'responseHeaders', 'overwrite', 'in', 'keys', 'keyHash', 'keysFile', 'forwardKey',
  'realm', 'users', 'passwordHash', 'htpasswdFile', 'forwardCredentials', 'allow', 'deny', 'useForwardedFor', 'maxDepth',
  'maxEntriesPerObject', 'maxNameLength', 'maxArraySize', 'maxStringLength', 'rejectNonJson', 'algorithms', 'jwksUrl',
  'publicKeys', 'secret', 'secretEncoding', 'cacheTtlMs', 'minRefetchIntervalMs', 'issuer', 'audience', 'clockSkewSeconds',
  'requiredClaims', 'consumerClaim', 'forwardClaims', 'forwardToken', 'tokenSource', 'scheme', 'query', 'cookie', 'cacheSize',
  'introspectionUrl', 'clientId', 'clientSecret', 'tokenTypeHint', 'requiredScopes', 'negativeCacheTtlMs', 'rateLimits',
  'maximumRequests', 'timePeriodInMilliseconds', 'keySelector', 'clientIp', 'consumer', 'claim', 'route', 'clusterizable',
  'onStoreFailure', 'maxWaitMs', 'burst', 'delayTimeInMillis', 'delayAttempts', 'queuingLimit',
] as const

/** Strings that mean something to some stage of the loader (URLs, regexes, CIDRs, substitutions). */
const LOADED_STRINGS = [
  '', ' ', API_VERSION, 'gatehouse/v2', ...KIND_NAMES, ...POLICY_NAMES, 'auto', 'round-robin', 'least-request', 'debug', 'local', 'header',
  '(', ')', '[', '*', '\\', '(?<n>x)', '(a+)+$', '/v1(/.*)', 'GET|POST', '.*', '(?=x)', '\\p{L}', '[\\d-z]',
  'http://', 'http://127.0.0.1', 'http://127.0.0.1:0', 'http://127.0.0.1:18081/orders', 'http://0.0.0.0:18081', 'http://[::]:18081/x',
  'http://[::1]:99999/x', 'https://h/', 'https://127.0.0.1:18443', 'http://u:p@h/', 'http://h/?q#f', 'http://127.0.0.1:19901',
  'ftp://h', 'http://h/a//', 'http://h:80', '127.0.0.1:6379', '[::1]:6379', 'host:99999',
  '0.0.0.0/0', '::/0', '10.0.0.0/33', '10.0.0.0/8', '::ffff:1.2.3.4', '1.2.3.4/024', 'fe80::1%eth0',
  '${env:NOPE}', '${env:GH_FUZZ_ADMIN_TOKEN}', '${env:GH_FUZZ_EMPTY}', '${env:}', '${env:1x}', '${file:}', '${file:nope}',
  '${file:.}', '${file:../secret.txt}', '$${env:X}', 'x${env:GH_FUZZ_JWT_SECRET}y', '${env:GH_FUZZ_ADMIN_TOKEN',
  'sha256:zz', `sha256:${'a'.repeat(64)}`, '{SHA}', '__proto__', 'constructor', 'hasOwnProperty', '<<',
  'a\u0000b', 'a\r\nb', 'a\u0001b', '\u2028', '\ufeff', '\u{1F642}', 'x'.repeat(300), 'HS256', 'RS256', 'none',
] as const

const NUMBERS = [0, -1, 1, 9, 10, 47, 48, 63, 64, 99, 100, 101, 1000, 65535, 65536, 2 ** 31 - 1, 2 ** 31, 2 ** 53 + 2, 1e21, -0, 0.5, 1.5] as const

/** Values that replace or extend parts of a config: plausible, boundary, type-confused and odd ones. */
export const mutantValueArb: fc.Arbitrary<unknown> = fc.oneof(
  { weight: 4, arbitrary: fc.constantFrom<unknown>(...LOADED_STRINGS, ...NUMBERS, null, true, false, [], {}, NaN, Infinity, -Infinity) },
  { weight: 2, arbitrary: fc.jsonValue({ maxDepth: 3 }) },
  { weight: 1, arbitrary: fc.string({ maxLength: 20 }) },
  { weight: 1, arbitrary: fc.string({ unit: 'binary', maxLength: 20 }) },
  { weight: 1, arbitrary: fc.integer() },
  { weight: 1, arbitrary: fc.double() },
  {
    weight: 1,
    arbitrary: fc.anything({
      maxDepth: 2, withMap: true, withSet: true, withDate: true, withNullPrototype: true, withBigInt: true,
      withTypedArray: true, withSparseArray: true,
    }),
  },
)

export const keyArb: fc.Arbitrary<string> = fc.oneof(
  { weight: 3, arbitrary: fc.constantFrom(...FIELD_NAMES) },
  { weight: 1, arbitrary: fc.constantFrom('__proto__', 'constructor', 'toString', '<<', '', ' ', '0', 'x-api-key', 'X-Api-Key') },
  { weight: 1, arbitrary: fc.string({ maxLength: 12 }) },
)

/** Either a plausible value (mostly) or any JSON value (sometimes): keeps validation going deep. */
function leaf<T>(plausible: fc.Arbitrary<T>): fc.Arbitrary<unknown> {
  return fc.oneof({ weight: 6, arbitrary: plausible as fc.Arbitrary<unknown> }, { weight: 1, arbitrary: fc.jsonValue({ maxDepth: 2 }) })
}

const nameArb = fc.oneof(fc.constantFrom('orders', 'orders-backend', 'demo', 'a', 'host', 'x.y', 'A', '-a', 'a-'), fc.stringMatching(/^[a-z0-9][-a-z0-9.]{0,20}$/))
const stringArb = fc.oneof(fc.constantFrom(...LOADED_STRINGS), fc.string({ maxLength: 16 }))
const intArb = fc.oneof(fc.constantFrom(...NUMBERS), fc.integer({ min: -10, max: 100_000 }))
const regexArb = fc.oneof(fc.constantFrom('/v1(/.*)', '(/.*)', 'GET|POST', '(', '[a-', '.*', '(?<x>a)', 'a{2,1}', '\\'), fc.string({ maxLength: 8 }))
const cfgHeaderNameArb = fc.oneof(fc.constantFrom('x-canary', 'X-Tenant', 'authorization', 'bad name', ''), fc.string({ maxLength: 8 }))
const urlArb = fc.oneof(
  fc.constantFrom(...LOADED_STRINGS.filter((s) => s.includes('://') || s.includes('${'))),
  fc.tuple(fc.constantFrom('http', 'https', 'ftp', 'HTTP'), fc.constantFrom('127.0.0.1', '0.0.0.0', '[::]', 'localhost', ''), fc.integer({ min: 0, max: 70_000 }), fc.constantFrom('', '/', '/a', '/a/b/', '?q'))
    .map(([s, h, p, path]) => `${s}://${h}:${p}${path}`),
)
const ruleArb = fc.record({
  path: leaf(regexArb), methods: leaf(regexArb), host: leaf(regexArb), headers: leaf(fc.dictionary(cfgHeaderNameArb, regexArb, { maxKeys: 3 })),
}, { requiredKeys: [] })
const rulesArb = leaf(fc.array(ruleArb, { maxLength: 3 }))
const endpointArb = fc.oneof(urlArb, fc.record({ url: leaf(urlArb), weight: leaf(intArb) }, { requiredKeys: [] }))
const policyConfigArb = leaf(fc.dictionary(fc.constantFrom(...FIELD_NAMES.slice(FIELD_NAMES.indexOf('allowOrigins'))), leaf(fc.oneof(stringArb, intArb, fc.boolean(), fc.array(stringArb, { maxLength: 3 }), fc.dictionary(stringArb, stringArb, { maxKeys: 3 }))), { maxKeys: 5 }))
const policyRefArb = leaf(fc.record({ name: leaf(fc.oneof({ weight: 4, arbitrary: fc.constantFrom(...POLICY_NAMES) }, { weight: 1, arbitrary: fc.string({ maxLength: 8 }) })) }))

const SPEC_ARBS: Record<(typeof KIND_NAMES)[number], fc.Arbitrary<unknown>> = {
  ApiInstance: fc.record({
    address: leaf(urlArb),
    tls: leaf(fc.record({ certFile: leaf(stringArb), keyFile: leaf(stringArb), passphrase: leaf(stringArb) }, { requiredKeys: [] })),
    services: leaf(fc.dictionary(fc.oneof(fc.constantFrom('v1', 'v2', 'a.b', '-x', ''), fc.string({ maxLength: 6 })), fc.record({
      service: leaf(nameArb), address: leaf(urlArb), endpoints: leaf(fc.array(endpointArb, { maxLength: 3 })),
      routes: leaf(fc.array(fc.record({ rules: rulesArb, weight: leaf(intArb) }, { requiredKeys: [] }), { maxLength: 3 })),
    }, { requiredKeys: [] }), { maxKeys: 3 })),
    policies: leaf(fc.array(fc.record({ policyRef: policyRefArb, config: policyConfigArb, order: leaf(intArb), rules: rulesArb }, { requiredKeys: [] }), { maxLength: 3 })),
    maxRequestBodyBytes: leaf(intArb),
    preserveHost: leaf(fc.boolean()),
  }, { requiredKeys: [] }),
  Service: fc.record({
    endpoints: leaf(fc.array(endpointArb, { maxLength: 3 })),
    loadBalancing: leaf(stringArb),
    timeouts: leaf(fc.record({ connectMs: leaf(intArb), responseMs: leaf(intArb) }, { requiredKeys: [] })),
    retries: leaf(intArb), keepAliveTimeoutMs: leaf(intArb), connectionsPerEndpoint: leaf(intArb),
    healthChecks: leaf(fc.record({
      passive: leaf(fc.record({ consecutiveFailures: leaf(intArb), baseEjectionMs: leaf(intArb), maxEjectionMs: leaf(intArb) }, { requiredKeys: [] })),
      active: leaf(fc.record({
        path: leaf(stringArb), intervalMs: leaf(intArb), timeoutMs: leaf(intArb), healthyThreshold: leaf(intArb), unhealthyThreshold: leaf(intArb),
        expectedStatus: leaf(fc.array(intArb, { maxLength: 3 })),
      }, { requiredKeys: [] })),
    }, { requiredKeys: [] })),
  }, { requiredKeys: [] }),
  PolicyBinding: fc.record({
    targetRef: leaf(fc.record({ kind: leaf(fc.constantFrom(...KIND_NAMES)), name: leaf(nameArb) }, { requiredKeys: [] })),
    policyRef: policyRefArb, order: leaf(intArb), rules: rulesArb, config: policyConfigArb,
  }, { requiredKeys: [] }),
  Configuration: fc.record({
    workers: leaf(fc.oneof(fc.constant('auto'), intArb)),
    sharedStorage: leaf(fc.record({ redis: leaf(fc.record({
      address: leaf(stringArb), username: leaf(stringArb), password: leaf(stringArb), db: leaf(intArb), tls: leaf(fc.boolean()),
      sentinel: leaf(fc.record({ name: leaf(stringArb), addresses: leaf(fc.array(stringArb, { maxLength: 2 })), password: leaf(stringArb) }, { requiredKeys: [] })),
      commandTimeoutMs: leaf(intArb),
    }, { requiredKeys: [] })) }, { requiredKeys: [] })),
    logging: leaf(fc.record({
      runtimeLogs: leaf(fc.record({ logLevel: leaf(stringArb) }, { requiredKeys: [] })),
      accessLogs: leaf(fc.record({ enabled: leaf(fc.boolean()), includeQuery: leaf(fc.boolean()) }, { requiredKeys: [] })),
      directory: leaf(stringArb),
    }, { requiredKeys: [] })),
    metrics: leaf(fc.record({ enabled: leaf(fc.boolean()), address: leaf(urlArb) }, { requiredKeys: [] })),
    tracing: leaf(fc.record({
      enabled: leaf(fc.boolean()), endpoint: leaf(urlArb), sampling: leaf(fc.oneof(fc.double(), intArb)), serviceName: leaf(stringArb),
      resourceAttributes: leaf(fc.dictionary(stringArb, stringArb, { maxKeys: 2 })), headers: leaf(fc.dictionary(cfgHeaderNameArb, stringArb, { maxKeys: 2 })),
    }, { requiredKeys: [] })),
    admin: leaf(fc.record({ address: leaf(urlArb), token: leaf(stringArb) }, { requiredKeys: [] })),
    drainTimeoutMs: leaf(intArb),
    heartbeat: leaf(fc.record({ intervalMs: leaf(intArb), misses: leaf(intArb) }, { requiredKeys: [] })),
    watch: leaf(fc.boolean()),
    trustedProxies: leaf(fc.array(stringArb, { maxLength: 3 })),
    limits: leaf(fc.record({ maxUrlBytes: leaf(intArb), maxHeaderBytes: leaf(intArb), maxHeaderCount: leaf(intArb) }, { requiredKeys: [] })),
  }, { requiredKeys: [] }),
}

/** One resource-shaped document: the envelope (mostly right) around a spec shaped like its kind's. */
export const resourceDocArb: fc.Arbitrary<unknown> = fc.constantFrom(...KIND_NAMES).chain((kind) => fc.record({
  apiVersion: fc.oneof({ weight: 8, arbitrary: fc.constant<unknown>(API_VERSION) }, { weight: 1, arbitrary: fc.jsonValue({ maxDepth: 1 }) }),
  kind: fc.oneof({ weight: 8, arbitrary: fc.constant<unknown>(kind) }, { weight: 1, arbitrary: fc.jsonValue({ maxDepth: 1 }) }),
  metadata: leaf(fc.record({ name: leaf(nameArb), labels: leaf(fc.dictionary(fc.string({ maxLength: 6 }), stringArb, { maxKeys: 2 })) }, { requiredKeys: ['name'] })),
  spec: SPEC_ARBS[kind],
}, { requiredKeys: ['apiVersion', 'kind'] }))

/** Any JS value yaml can stringify, from plain JSON to Maps, Sets, Dates, typed arrays and BigInts. */
export const anyDocArb: fc.Arbitrary<unknown> = fc.oneof(
  fc.jsonValue({ maxDepth: 4 }),
  fc.anything({ maxDepth: 3, withMap: true, withSet: true, withDate: true, withNullPrototype: true, withBigInt: true, withTypedArray: true, withSparseArray: true }),
)

/** YAML text of documents; `undefined` when yaml cannot stringify one (the caller skips the run). */
export function yamlOf(docs: readonly unknown[]): string | undefined {
  try {
    return docs.map((d) => stringify(d, { lineWidth: 0 })).join('---\n')
  } catch {
    return undefined
  }
}

/** Spreads documents over 1–3 files (`.yaml` and `.yml`), in document order. */
export function filesOf(docs: readonly unknown[], fileCount: number): ConfigFiles | undefined {
  const n = Math.max(1, Math.min(fileCount, docs.length))
  const files: ConfigFiles = {}
  for (let f = 0; f < n; f++) {
    const text = yamlOf(docs.filter((_, i) => i % n === f))
    if (text === undefined) return undefined
    files[`${String(f).padStart(2, '0')}-conf.${f % 2 === 0 ? 'yaml' : 'yml'}`] = text
  }
  return files
}

/** (b) Generated documents, stringified by the yaml package, in one to three files. */
export const generatedDocsArb: fc.Arbitrary<unknown[]> = fc.array(
  fc.oneof({ weight: 3, arbitrary: resourceDocArb }, { weight: 1, arbitrary: anyDocArb }),
  { minLength: 1, maxLength: 4 },
)

// (a) Raw text. Fragments the YAML grammar and the loader react to, glued at random.
const YAML_FRAGMENTS = [
  'apiVersion: gatehouse/v1\n', ...KIND_NAMES.map((k) => `kind: ${k}\n`), 'metadata: { name: a }\n', 'spec:\n', '  services:\n',
  '---\n', '...\n', '--- ', '%YAML 1.1\n', '%YAML 1.2\n', '%TAG !x! tag:x,2000:\n', '%FOO bar\n',
  '&a ', '*a', '&b [*a, *a]\n', '<<: *a\n', '? ', ': ', '- ', '-', ':', '[', ']', '{', '}', ', ', '"', "'", '|', '>-', '|2+\n', '# c\n',
  '\n', '  ', '    ', '\t', '\r\n', '\r', '\ufeff', '\u0000', '\u0085', '\u2028',
  '!!omap ', '!!set ', '!!binary ', '!!timestamp ', '!!pairs ', '!!str ', '!!int ', '!!float ', '!!map ', '!!seq ', '!!null ', '!!bool ',
  '!local ', '!<tag:yaml.org,2002:str> ', '!!js/function ',
  '.inf', '-.inf', '.nan', '0x1F', '0o17', '1e400', '-0', '~', 'null', 'true', 'yes', 'on', '2001-12-14', '2001-12-14t21:59:43.10-05:00', '12:30:00',
  '${env:GH_FUZZ_ADMIN_TOKEN}', '${env:NOPE}', '${file:nope}', '${file:../secret.txt}', '$${env:X}',
  'address: http://127.0.0.1:18081/a\n', 'endpoints: [http://127.0.0.1:19000]\n', 'routes: [{}]\n', 'config: {}\n', 'policyRef: { name: cors }\n',
  'x', 'a: b\n', 'a: [b, {c: d}]\n', 'aGVsbG8=', '"\\x01\\u0000\\N"', "'it''s'",
] as const

/** Brackets or dashes nested `depth` deep: the parser's and the loader's recursion. */
export const deepNestingArb: fc.Arbitrary<string> = fc.tuple(fc.integer({ min: 1, max: 3000 }), fc.constantFrom('flow-seq', 'flow-map', 'block-seq', 'block-map', 'alias'))
  .map(([depth, how]) => {
    const head = 'apiVersion: gatehouse/v1\nkind: Service\nmetadata: { name: a }\nspec:\n  endpoints: '
    switch (how) {
      case 'flow-seq': return `${head}${'['.repeat(depth)}${']'.repeat(depth)}\n`
      case 'flow-map': return `${head}${'{a: '.repeat(depth)}1${'}'.repeat(depth)}\n`
      // Block styles grow quadratically: at most 1200 levels (the parser gives up at ~800).
      case 'block-seq': return `${head}\n${Array.from({ length: Math.min(depth, 1200) }, (_, i) => `${' '.repeat(i + 4)}- `).join('\n')}x\n`
      case 'block-map': return `${head}\n${Array.from({ length: Math.min(depth, 1200) }, (_, i) => `${' '.repeat(i + 4)}k${i}:`).join('\n')} x\n`
      default: return `a0: &a0 [x, x]\n${Array.from({ length: Math.min(depth, 40) }, (_, i) => `a${i + 1}: &a${i + 1} [*a${i}, *a${i}, *a${i}]`).join('\n')}\n`
    }
  })

export const yamlSoupArb: fc.Arbitrary<string> = fc.array(
  fc.oneof({ weight: 4, arbitrary: fc.constantFrom(...YAML_FRAGMENTS) }, { weight: 1, arbitrary: fc.string({ maxLength: 6 }) }),
  { maxLength: 60 },
).map((parts) => parts.join(''))

/** (a) Any text or bytes as one .yaml file. */
export const rawFileArb: fc.Arbitrary<string | Uint8Array> = fc.oneof(
  fc.string({ maxLength: 300 }),
  fc.string({ unit: 'binary', maxLength: 300 }),
  fc.string({ unit: 'grapheme', maxLength: 100 }),
  fc.uint8Array({ maxLength: 300 }),
  yamlSoupArb,
  deepNestingArb,
)

// (c) A valid, quickstart-like directory and mutations of it.

/** Files outside the config directory that a valid config names (absolute paths). */
export interface BaseFixtures { keysFile: string; htpasswdFile: string; certFile: string; keyFile: string }

const SHA_SECRET = '{SHA}5en6G6MezRroT3XKqkdPOmY/BfQ=' // base64(sha1("secret"))
const SHA256_KEY = `sha256:${'2bb80d537b1da3e38bd30361aa855686bde0eacd7162fef6a25fe97bf527a25b'}` // sha256("secret")

/**
 * A valid config exercising every kind, most fields and every policy: the quickstart
 * plus a split, inline services, TLS, a binding, substitutions and referenced files.
 */
export function baseConfig(fx: BaseFixtures): Record<string, unknown>[] {
  const rules = [{ path: '/v1(/.*)', methods: 'GET|POST', headers: { 'x-canary': 'no|' } }]
  return [
    {
      apiVersion: API_VERSION, kind: 'ApiInstance', metadata: { name: 'orders', labels: { team: 'core' } },
      spec: {
        address: 'http://127.0.0.1:18081/orders',
        maxRequestBodyBytes: 1_048_576,
        preserveHost: false,
        services: {
          v1: { service: 'orders-backend', routes: [{ rules, weight: 90 }] },
          v2: { service: 'orders-backend-v2', routes: [{ rules, weight: 10 }] },
          admin: { address: 'http://127.0.0.1:19002/admin', routes: [{ rules: [{ path: '/admin(/.*)', host: 'admin\\.example' }] }] },
          pool: { endpoints: ['http://127.0.0.1:19003', { url: 'http://127.0.0.1:19004', weight: 2 }], routes: [{}] },
        },
        policies: [
          { policyRef: { name: 'cors' }, config: { allowOrigins: ['https://app.example'], allowOriginPatterns: ['https://.*\\.example'], allowCredentials: true, maxAgeSeconds: 600, exposeHeaders: ['x-total'] } },
          { policyRef: { name: 'ip-filter' }, config: { allow: ['10.0.0.0/8', '127.0.0.1', '::1'], deny: ['10.1.0.0/16'], useForwardedFor: true } },
          { policyRef: { name: 'http-basic-authentication' }, rules: [{ path: '/basic(/.*)' }], config: { realm: 'orders', users: [{ username: 'alice', passwordHash: SHA_SECRET }], htpasswdFile: fx.htpasswdFile } },
          { policyRef: { name: 'api-key' }, order: 26, rules: [{ path: '/keyed(/.*)' }], config: { in: 'header', name: 'x-api-key', keys: [{ name: 'svc', keyHash: SHA256_KEY }], keysFile: fx.keysFile } },
          {
            policyRef: { name: 'jwt-validation' }, rules: [{ path: '/jwt(/.*)' }],
            config: {
              algorithms: ['HS256'], secret: '${env:GH_FUZZ_JWT_SECRET}', issuer: 'https://idp.example', audience: ['orders'],
              requiredClaims: ['sub', { name: 'scope', value: 'orders:read' }], forwardClaims: { sub: 'x-user' }, tokenSource: { header: 'authorization', scheme: 'Bearer' },
            },
          },
          { policyRef: { name: 'oauth2-introspection' }, rules: [{ path: '/opaque(/.*)' }], config: { introspectionUrl: 'http://127.0.0.1:19010/introspect', clientId: 'gw', clientSecret: '${env:GH_FUZZ_CLIENT_SECRET}', requiredScopes: ['orders'] } },
          { policyRef: { name: 'rate-limit' }, config: { rateLimits: [{ maximumRequests: 100, timePeriodInMilliseconds: 1000 }], keySelector: { consumer: true, header: 'x-tenant' }, onStoreFailure: 'local', maxWaitMs: 20 } },
          { policyRef: { name: 'spike-control' }, config: { maximumRequests: 10, timePeriodInMilliseconds: 1000, burst: 5, queuingLimit: 3 } },
          { policyRef: { name: 'json-threat-protection' }, config: { maxDepth: 10, maxEntriesPerObject: 100, maxNameLength: 64, maxArraySize: 1000, maxStringLength: 10_000 } },
          { policyRef: { name: 'header-removal' }, config: { requestHeaders: ['x-internal'], responseHeaders: ['server'] } },
          { policyRef: { name: 'header-injection' }, config: { requestHeaders: { 'x-gateway': 'gatehouse' }, responseHeaders: { 'x-served-by': 'gatehouse' } } },
        ],
      },
    },
    {
      apiVersion: API_VERSION, kind: 'ApiInstance', metadata: { name: 'demo' },
      spec: {
        address: 'http://127.0.0.1:18080/demo',
        services: { echo: { service: 'demo-upstream', routes: [{ rules: [{ path: '/v1(/.*)', methods: 'GET|POST|PUT|DELETE|OPTIONS' }] }] } },
        policies: [{ policyRef: { name: 'header-injection' }, config: { requestHeaders: { 'x-gateway': 'gatehouse' } } }],
      },
    },
    {
      apiVersion: API_VERSION, kind: 'ApiInstance', metadata: { name: 'secure' },
      spec: {
        address: 'https://127.0.0.1:18443/',
        tls: { certFile: fx.certFile, keyFile: fx.keyFile },
        services: { all: { address: 'http://127.0.0.1:19005', routes: [{ rules: [{ path: '(/.*)' }] }] } },
      },
    },
    {
      apiVersion: API_VERSION, kind: 'Service', metadata: { name: 'orders-backend' },
      spec: {
        endpoints: ['http://127.0.0.1:19000', { url: 'http://127.0.0.1:19001/base', weight: 2 }],
        loadBalancing: 'least-request', timeouts: { connectMs: 2000, responseMs: 15_000 }, retries: 1, keepAliveTimeoutMs: 4000, connectionsPerEndpoint: 64,
        healthChecks: {
          passive: { consecutiveFailures: 5, baseEjectionMs: 10_000, maxEjectionMs: 300_000 },
          active: { path: '/healthz', intervalMs: 5000, timeoutMs: 2000, healthyThreshold: 2, unhealthyThreshold: 3, expectedStatus: [200, 399] },
        },
      },
    },
    { apiVersion: API_VERSION, kind: 'Service', metadata: { name: 'orders-backend-v2' }, spec: { endpoints: ['http://127.0.0.1:19006'] } },
    { apiVersion: API_VERSION, kind: 'Service', metadata: { name: 'demo-upstream' }, spec: { endpoints: ['http://127.0.0.1:9000'], loadBalancing: 'round-robin', timeouts: { connectMs: 1000, responseMs: 10_000 } } },
    {
      apiVersion: API_VERSION, kind: 'PolicyBinding', metadata: { name: 'orders-admin-headers' },
      spec: { targetRef: { kind: 'ApiInstance', name: 'orders' }, policyRef: { name: 'header-injection' }, order: 20, rules: [{ path: '/v1/admin(/.*)' }], config: { requestHeaders: { 'x-zone': 'admin' } } },
    },
    {
      apiVersion: API_VERSION, kind: 'Configuration', metadata: { name: 'host' },
      spec: {
        workers: 2,
        admin: { address: 'http://127.0.0.1:19901', token: '${env:GH_FUZZ_ADMIN_TOKEN}' },
        drainTimeoutMs: 25_000,
        heartbeat: { intervalMs: 1000, misses: 5 },
        watch: false,
        trustedProxies: ['10.0.0.0/8', '::1'],
        limits: { maxUrlBytes: 4096, maxHeaderBytes: 8192, maxHeaderCount: 40 },
        logging: { runtimeLogs: { logLevel: 'info' }, accessLogs: { enabled: true, includeQuery: false }, directory: 'logs' },
        metrics: { enabled: true, address: 'http://127.0.0.1:19902' },
        tracing: { endpoint: 'http://127.0.0.1:4318', sampling: 0.01, serviceName: 'gatehouse', resourceAttributes: { 'deployment.environment.name': 'test' }, headers: { authorization: '${env:GH_FUZZ_OTLP_TOKEN}' } },
        sharedStorage: { redis: { address: '127.0.0.1:6379', db: 0, commandTimeoutMs: 250 } },
      },
    },
  ]
}

export type MutationOp = 'tweak' | 'replace' | 'delete' | 'insert' | 'rename' | 'swap' | 'dupItem' | 'dupDoc' | 'dropDoc'

export interface Mutation {
  op: MutationOp
  /** Picks the document (modulo the count). */
  doc: number
  /** Picks the node inside it (modulo its node count). */
  at: number
  /** Picks the swap source (modulo the node count of the whole config), or the tweak. */
  from: number
  value: unknown
  key: string
}

export const mutationArb: fc.Arbitrary<Mutation> = fc.record({
  op: fc.constantFrom<MutationOp>('tweak', 'tweak', 'tweak', 'replace', 'replace', 'delete', 'delete', 'insert', 'rename', 'swap', 'dupItem', 'dupDoc', 'dropDoc'),
  doc: fc.nat(),
  at: fc.nat(),
  from: fc.nat(),
  value: mutantValueArb,
  key: keyArb,
})

export const mutationsArb: fc.Arbitrary<Mutation[]> = fc.array(mutationArb, { minLength: 1, maxLength: 3 })

type Path = (string | number)[]

/** Paths of every node, descending into arrays and plain objects only (not Maps, typed arrays...). */
function nodePaths(v: unknown, at: Path = [], out: Path[] = []): Path[] {
  out.push(at)
  if (Array.isArray(v)) v.forEach((x, i) => nodePaths(x, [...at, i], out))
  else if (isPlainObject(v)) for (const [k, x] of Object.entries(v)) nodePaths(x, [...at, k], out)
  return out
}

function isPlainObject(v: unknown): v is Record<string, unknown> {
  if (v === null || typeof v !== 'object') return false
  const proto = Object.getPrototypeOf(v) as unknown
  return proto === Object.prototype || proto === null
}

function getAt(root: unknown, p: Path): unknown {
  let v = root
  for (const seg of p) v = (v as Record<string | number, unknown>)[seg]
  return v
}

/**
 * A value near `v` (same type, often still valid): boundaries for numbers, a flip for
 * booleans, small edits for strings. More of the mutated configs load, so compile runs too.
 */
function tweak(v: unknown, pick: number): unknown {
  if (typeof v === 'number') {
    const near = [0, 1, -1, v - 1, v + 1, v * 2, Math.floor(v / 2), 2 ** 31 - 1, 100, 1000, 0.5, v + 0.5]
    return near[pick % near.length]
  }
  if (typeof v === 'boolean') return !v
  if (typeof v === 'string') {
    const near = [`${v}x`, v.slice(0, -1), v.toUpperCase(), `${v}/`, ` ${v}`, v.replace(/[0-9]/, '9'), v.replace('127.0.0.1', '0.0.0.0'), v.replace(/:\d+/, ':80'), v + v]
    return near[pick % near.length]
  }
  if (Array.isArray(v)) return pick % 2 === 0 ? [] : [...v, ...v]
  if (isPlainObject(v)) return pick % 2 === 0 ? {} : v
  return v
}

function container(v: unknown): v is Record<string, unknown> | unknown[] {
  return Array.isArray(v) || isPlainObject(v)
}

/**
 * Applies mutations to a deep copy of `docs` (generated values are copied in, never
 * shared); deterministic in its inputs, so it shrinks.
 */
export function applyMutations(docs: readonly unknown[], mutations: readonly Mutation[]): unknown[] {
  const out = structuredClone(docs) as unknown[]
  for (const m of mutations) {
    if (out.length === 0) break
    const d = m.doc % out.length
    if (m.op === 'dupDoc') { out.splice(d + 1, 0, structuredClone(out[d])); continue }
    if (m.op === 'dropDoc') { out.splice(d, 1); continue }
    const paths = nodePaths(out[d])
    const p = paths[m.at % paths.length]!
    if (p.length === 0) {
      // The document itself.
      if (m.op === 'tweak') continue
      if (m.op === 'replace' || m.op === 'swap') out[d] = structuredClone(m.value)
      else if (m.op === 'delete') out.splice(d, 1)
      else if (m.op === 'insert' && container(out[d]) && !Array.isArray(out[d])) (out[d] as Record<string, unknown>)[m.key] = structuredClone(m.value)
      continue
    }
    const parent = getAt(out[d], p.slice(0, -1)) as Record<string | number, unknown>
    const last = p[p.length - 1]!
    switch (m.op) {
      case 'tweak': parent[last] = tweak(parent[last], m.from); break
      case 'replace': parent[last] = structuredClone(m.value); break
      case 'delete':
        if (Array.isArray(parent)) parent.splice(last as number, 1)
        else delete parent[last]
        break
      case 'insert': {
        const target = getAt(out[d], p)
        const value = structuredClone(m.value)
        if (Array.isArray(target)) target.splice(m.at % (target.length + 1), 0, value)
        else if (container(target)) (target as Record<string, unknown>)[m.key] = value
        else parent[last] = value
        break
      }
      case 'rename':
        if (!Array.isArray(parent) && typeof last === 'string') {
          const v = parent[last]
          delete parent[last]
          parent[m.key] = v
        }
        break
      case 'swap': {
        // A value from elsewhere in the config: type confusion with plausible values.
        const all = out.flatMap((doc, i) => nodePaths(doc).map((q) => [i, q] as const))
        const [si, sp] = all[m.from % all.length]!
        parent[last] = structuredClone(getAt(out[si], sp))
        break
      }
      case 'dupItem':
        if (Array.isArray(parent)) parent.splice(last as number, 0, structuredClone(parent[last as number]))
        else parent[`${String(last)}2`] = structuredClone(parent[last])
        break
    }
  }
  return out
}

// ── request headers ─────────────────────────────────────────────────────────────────

/** RFC 9110 tchar. */
export const TCHARS = "!#$%&'*+-.^_`|~0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
/**
 * The tchars the pinned uWS build accepts in a header name: letters, digits and "-". A name
 * with any other tchar (`!#$%&'*+.^_\`|~`, e.g. `x_custom` or `x.y`) is valid HTTP, yet
 * uWS never dispatches the request and closes at its idle timeout (measured by
 * test/integration/property-headers.test.ts; the same as its non-token cases, findings §6).
 */
export const UWS_NAME_CHARS = '-0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ'
/** The other tchars. */
export const UWS_REFUSED_TCHARS = "!#$%&'*+.^_`|~"

/**
 * Request headers the gateway consumes, removes or sets itself (src/worker/handle-request.ts
 * collectHeader and headers.ts HOP_BY_HOP; X-Forwarded-*, X-Request-Id, Host, framing), plus
 * the tracing headers (rewritten when tracing is on) and Forwarded. Every `proxy-*` name
 * is dropped too (isForwardable).
 */
export const GATEWAY_OWNED: ReadonlySet<string> = new Set([
  'host', 'connection', 'keep-alive', 'proxy-connection', 'te', 'trailer', 'transfer-encoding', 'upgrade', 'content-length', 'expect',
  'x-forwarded-for', 'x-forwarded-proto', 'x-forwarded-host', 'forwarded', 'x-request-id', 'traceparent', 'tracestate',
])

export function isForwardable(name: string): boolean {
  const n = name.toLowerCase()
  return !GATEWAY_OWNED.has(n) && !n.startsWith('proxy-')
}

/** Names the gateway adds to every upstream request, whatever the client sent. */
export const GATEWAY_ADDED: ReadonlySet<string> = new Set(['host', 'connection', 'x-forwarded-for', 'x-forwarded-proto', 'x-forwarded-host', 'x-request-id'])

/** uWS's compiled-in buffered header-section limit (docs/uws-parser-findings.md §8). */
export const MAX_HEAD_BYTES = 4096
/** The default `limits.maxHeaderCount`, counting Host and Connection too. */
export const MAX_HEADER_COUNT = 40

const COMMON_NAMES = [
  'accept', 'Accept-Language', 'user-agent', 'cookie', 'authorization', 'content-type', 'cache-control', 'x-api-key', 'if-none-match',
  'x-dup', 'X-Dup', 'via', 'date', 'referer', 'origin', 'x-b3-traceid', 'a', 'A', '1', '-',
]

/** Names of valid header fields that reach the gateway: tokens of UWS_NAME_CHARS. */
export const headerNameArb: fc.Arbitrary<string> = fc.oneof(
  { weight: 3, arbitrary: fc.string({ unit: fc.constantFrom(...UWS_NAME_CHARS), minLength: 1, maxLength: 24 }) },
  { weight: 2, arbitrary: fc.mixedCase(fc.constantFrom(...COMMON_NAMES)) },
).filter(isForwardable)

const VCHAR_SP_HTAB = [...Array.from({ length: 0x7e - 0x21 + 1 }, (_, i) => String.fromCharCode(0x21 + i)), ' ', '\t']

function trimOws(s: string): string {
  return s.replace(/^[ \t]+|[ \t]+$/g, '')
}

/** Field values: visible ASCII, SP and HTAB, no leading or trailing whitespace; empty allowed. */
export const headerValueArb: fc.Arbitrary<string> = fc.oneof(
  { weight: 6, arbitrary: fc.string({ unit: fc.constantFrom(...VCHAR_SP_HTAB), maxLength: 60 }) },
  { weight: 1, arbitrary: fc.string({ unit: fc.constantFrom(...VCHAR_SP_HTAB), minLength: 500, maxLength: 3000 }) },
).map(trimOws)

export type HeaderPair = readonly [name: string, value: string]

/** What a raw request looks like before it is serialized: the client's headers and where Host/Connection go. */
export interface HeaderCase {
  headers: HeaderPair[]
  /** Indexes (clamped) at which Host and Connection: close are inserted among `headers`. */
  hostAt: number
  connectionAt: number
}

/** Request line + headers + CRLFCRLF, with the path placeholder at its longest. */
export function headBytes(c: HeaderCase, pathLen = 24): number {
  let n = `GET ${'x'.repeat(pathLen)} HTTP/1.1\r\n`.length + 'Host: gw.test\r\n'.length + 'Connection: close\r\n'.length + 2
  for (const [k, v] of c.headers) n += Buffer.byteLength(k, 'latin1') + 2 + Buffer.byteLength(v, 'latin1') + 2
  return n
}

/** (2a) Valid header sets: ≤ 38 client headers (+ Host + Connection = 40) within 4 KiB. */
export const validHeaderCaseArb: fc.Arbitrary<HeaderCase> = fc.record({
  headers: fc.array(fc.tuple(headerNameArb, headerValueArb), { maxLength: MAX_HEADER_COUNT - 2 }),
  hostAt: fc.nat(),
  connectionAt: fc.nat(),
}).filter((c) => headBytes(c) <= MAX_HEAD_BYTES)

/**
 * Invalid values the gateway itself gets to see and must answer promptly: DEL (0x7f)
 * anywhere in an otherwise valid value. uWS passes it to JS; undici refuses to send it.
 */
export const delValueArb: fc.Arbitrary<string> = fc.tuple(headerValueArb, fc.nat(), fc.integer({ min: 1, max: 3 }))
  .map(([v, at, n]) => {
    const i = at % (v.length + 1)
    return v.slice(0, i) + '\x7f'.repeat(n) + v.slice(i)
  })

/** An otherwise valid case plus one bad header at a random position. */
export interface BadHeaderCase extends HeaderCase { bad: HeaderPair; badAt: number }

function withBad(bad: fc.Arbitrary<HeaderPair>): fc.Arbitrary<BadHeaderCase> {
  return fc.record({
    headers: fc.array(fc.tuple(headerNameArb, headerValueArb), { maxLength: 10 }),
    hostAt: fc.nat(), connectionAt: fc.nat(), bad, badAt: fc.nat(),
  }).filter((c) => headBytes({ ...c, headers: [...c.headers, c.bad] }) <= MAX_HEAD_BYTES)
}

/** (2b) Answered by the gateway: a value containing DEL. */
export const delHeaderCaseArb: fc.Arbitrary<BadHeaderCase> = withBad(fc.tuple(headerNameArb, delValueArb))

/** C0 controls other than HTAB, as latin1 characters (CR and LF included: bare ones). */
const C0_NO_HTAB = Array.from({ length: 0x20 }, (_, i) => String.fromCharCode(i)).filter((c) => c !== '\t')

/** Values with a C0 control char (not HTAB) somewhere inside. */
export const controlValueArb: fc.Arbitrary<string> = fc.tuple(headerValueArb, fc.nat(), fc.constantFrom(...C0_NO_HTAB))
  .map(([v, at, c]) => {
    const short = v.slice(0, 40)
    const i = at % (short.length + 1)
    return short.slice(0, i) + c + short.slice(i)
  })

/** Characters that are not tchar: separators, SP/HTAB, controls, DEL and non-ASCII bytes. */
const NON_TCHAR = [
  ...'"(),/;<=>?@[\\]{} \t', // not ':' ("a:b: v" is the valid header a)
  ...Array.from({ length: 0x20 }, (_, i) => String.fromCharCode(i)).filter((c) => c !== '\r' && c !== '\n'),
  '\x7f', '\x80', '\xe9', '\xff',
]

/** Header names with at least one non-token character (never a leading ':' or an empty name: findings §6). */
export const nonTokenNameArb: fc.Arbitrary<string> = fc.tuple(
  fc.string({ unit: fc.constantFrom(...UWS_NAME_CHARS), minLength: 1, maxLength: 12 }), fc.nat(), fc.constantFrom(...NON_TCHAR),
).map(([n, at, c]) => {
  const i = 1 + (at % n.length) // after the first char: a name never starts with the bad one
  return n.slice(0, i) + c + n.slice(i)
})

/** Valid token names with a tchar uWS refuses (UWS_REFUSED_TCHARS), anywhere in the name. */
export const uwsRefusedTokenNameArb: fc.Arbitrary<string> = fc.tuple(
  fc.string({ unit: fc.constantFrom(...UWS_NAME_CHARS), maxLength: 12 }), fc.nat(), fc.constantFrom(...UWS_REFUSED_TCHARS),
).map(([n, at, c]) => {
  const i = at % (n.length + 1)
  return n.slice(0, i) + c + n.slice(i)
})

/**
 * (2b) Dropped by the pinned uWS build before any JS runs (docs/uws-parser-findings.md
 * §6, §10): a control character in a value, a non-token name, and (not in the findings)
 * a valid token name with a tchar other than letters, digits and "-". uWS sends nothing
 * and closes only at its idle timeout (~10–12 s).
 */
export const uwsRejectedCaseArb: fc.Arbitrary<BadHeaderCase> = withBad(fc.oneof(
  fc.tuple(headerNameArb, controlValueArb),
  fc.tuple(nonTokenNameArb, headerValueArb.map((v) => v.slice(0, 40))),
  fc.tuple(uwsRefusedTokenNameArb, headerValueArb.map((v) => v.slice(0, 40))),
))

/** Serializes a case as raw HTTP/1.1 bytes (latin1: one byte per char). */
export function requestBytes(path: string, c: HeaderCase | BadHeaderCase): Buffer {
  const lines = c.headers.map(([k, v]) => `${k}: ${v}`)
  if ('bad' in c) lines.splice(c.badAt % (lines.length + 1), 0, `${c.bad[0]}: ${c.bad[1]}`)
  lines.splice(c.hostAt % (lines.length + 1), 0, 'Host: gw.test')
  lines.splice(c.connectionAt % (lines.length + 1), 0, 'Connection: close')
  return Buffer.from(`GET ${path} HTTP/1.1\r\n${lines.map((l) => `${l}\r\n`).join('')}\r\n`, 'latin1')
}
