/**
 * One bad input per case, each asserting the complete list of formatted errors, position
 * and path included. Fixture line N is array index N-1.
 */
import { POLICY_SCHEMAS } from '../../src/worker/policies/schemas.js'
import assert from 'node:assert/strict'
import path from 'node:path'
import { after, describe, test } from 'node:test'
import { apiHead, errorsOf, Fixtures, serviceHead, type Files } from './helpers.js'

const fx = new Fixtures()
after(() => fx.cleanup())

interface Case {
  title: string
  files: Files
  env?: Record<string, string>
  /** `F` stands for the fixture dir; replaced before comparing. */
  expected: string[]
}

const route = '      routes: [{ rules: [{ path: /v1(/.*) }] }]'

const cases: Case[] = [
  {
    title: 'a YAML syntax error is reported at its position',
    files: { 'a.yaml': ['a: 1', 'b: [1, 2'] },
    expected: ['F/a.yaml:3:1: Flow sequence in block collection must be sufficiently indented and end with a ]'],
  },
  {
    title: 'a duplicate YAML key is an error at the second key',
    files: { 'a.yaml': [...apiHead(), '  address: http://0.0.0.0:8081', '  address: http://0.0.0.0:8082'] },
    expected: ['F/a.yaml:6:3: spec.address: duplicate key "address"'],
  },
  {
    title: 'a wrong apiVersion is reported at the apiVersion value',
    files: { 'a.yaml': ['apiVersion: gatehouse/v2', 'kind: Service', 'metadata: { name: x }', 'spec: {}'] },
    expected: ['F/a.yaml:1:13: apiVersion: must be "gatehouse/v1", got "gatehouse/v2"'],
  },
  {
    title: 'an unknown kind lists the kinds there are',
    files: { 'a.yaml': ['apiVersion: gatehouse/v1', 'kind: Servce', 'metadata: { name: x }', 'spec: {}'] },
    expected: ['F/a.yaml:2:7: kind: unknown kind "Servce" (one of: ApiInstance, Service, PolicyBinding, Configuration)'],
  },
  {
    title: 'a missing metadata.name is reported on metadata',
    files: { 'a.yaml': ['apiVersion: gatehouse/v1', 'kind: Service', 'metadata: { labels: { team: a } }', 'spec:', '  endpoints: [http://10.0.0.5:8080]'] },
    expected: ['F/a.yaml:3:11: metadata: missing required field "name"'],
  },
  {
    title: 'a name that is not DNS-1123 says what a name may contain',
    files: { 'a.yaml': ['apiVersion: gatehouse/v1', 'kind: Service', 'metadata: { name: Orders_DB }', 'spec:', '  endpoints: [http://10.0.0.5:8080]'] },
    expected: ['F/a.yaml:3:19: metadata.name: must be a lowercase DNS-1123 name (a-z, 0-9, "-", "."; starting and ending with a letter or digit)'],
  },
  {
    title: 'a misspelt field is an error at the key with a suggestion',
    files: { 'a.yaml': [...serviceHead(), '  endpoints: [http://10.0.0.5:8080]', '  loadBalancer: least-request'] },
    expected: ['F/a.yaml:6:3: spec.loadBalancer: unknown field (did you mean "loadBalancing"?)'],
  },
  {
    title: 'a value of the wrong type names both types',
    files: { 'a.yaml': [...apiHead(), '  address: http://0.0.0.0:8081', '  maxRequestBodyBytes: 1MB', '  services:', '    v1:', '      address: http://10.0.0.5:8080', route] },
    expected: ['F/a.yaml:6:24: spec.maxRequestBodyBytes: must be an integer, got a string'],
  },
  {
    title: 'a missing required field is reported on its parent',
    files: { 'a.yaml': [...apiHead(), '  services:', '    v1:', '      address: http://10.0.0.5:8080', route] },
    expected: ['F/a.yaml:5:3: spec: missing required field "address"'],
  },
  {
    title: 'an invalid route path regex carries the engine\'s reason',
    files: { 'a.yaml': [...apiHead(), '  address: http://0.0.0.0:8081', '  services:', '    v1:', '      address: http://10.0.0.5:8080', '      routes: [{ rules: [{ path: /v1(/.* }] }]'] },
    expected: ['F/a.yaml:9:34: spec.services.v1.routes[0].rules[0].path: invalid regular expression: Unterminated group'],
  },
  {
    title: 'an invalid methods regex is reported',
    files: { 'a.yaml': [...apiHead(), '  address: http://0.0.0.0:8081', '  services:', '    v1:', '      address: http://10.0.0.5:8080', '      routes: [{ rules: [{ methods: "GET|*" }] }]'] },
    expected: ['F/a.yaml:9:37: spec.services.v1.routes[0].rules[0].methods: invalid regular expression: Nothing to repeat'],
  },
  {
    title: 'an invalid header regex is reported under the header name',
    files: { 'a.yaml': [...apiHead(), '  address: http://0.0.0.0:8081', '  services:', '    v1:', '      address: http://10.0.0.5:8080', '      routes: [{ rules: [{ headers: { x-tenant: "[a-" } }] }]'] },
    expected: ['F/a.yaml:9:49: spec.services.v1.routes[0].rules[0].headers.x-tenant: invalid regular expression: Unterminated character class'],
  },
  {
    title: 'an invalid cors allowOriginPatterns regex is reported inside the policy config',
    files: {
      'a.yaml': [...apiHead(), '  address: http://0.0.0.0:8081', '  services:', '    v1: { address: http://10.0.0.5:8080, routes: [{}] }', '  policies:',
        '    - policyRef: { name: cors }', '      config: { allowOrigins: ["https://a.example"], allowOriginPatterns: ["https://(.*\\\\.example"] }'],
    },
    expected: ['F/a.yaml:10:76: spec.policies[0].config.allowOriginPatterns[0]: invalid regular expression: Unterminated group'],
  },
  {
    title: 'an unknown policy name lists the known policies',
    files: { 'a.yaml': [...apiHead(), '  address: http://0.0.0.0:8081', '  services:', '    v1: { address: http://10.0.0.5:8080, routes: [{}] }', '  policies:', '    - policyRef: { name: rate-limt }'] },
    expected: [`F/a.yaml:9:26: spec.policies[0].policyRef.name: unknown policy "rate-limt" (known: ${Object.keys(POLICY_SCHEMAS).sort().join(', ')})`],
  },
  {
    title: 'a policy config is validated against that policy\'s schema',
    files: {
      'a.yaml': [...apiHead(), '  address: http://0.0.0.0:8081', '  services:', '    v1: { address: http://10.0.0.5:8080, routes: [{}] }', '  policies:',
        '    - policyRef: { name: header-injection }', '      config: { overwrite: "yes", requestHeaders: { x-a: 5 } }'],
    },
    expected: [
      'F/a.yaml:10:28: spec.policies[0].config.overwrite: must be true or false, got a string',
      'F/a.yaml:10:58: spec.policies[0].config.requestHeaders.x-a: must be a string, got an integer',
    ],
  },
  {
    title: 'an injected header value with a control character or DEL is an error (undici would refuse it on every request)',
    files: {
      'a.yaml': [...apiHead(), '  address: http://0.0.0.0:8081', '  services:', '    v1: { address: http://10.0.0.5:8080, routes: [{}] }', '  policies:',
        '    - policyRef: { name: header-injection }', '      config: { requestHeaders: { x-a: "a\\x01b", x-b: "a\\x7fb", x-c: "café\\tok" } }'],
    },
    expected: [
      'F/a.yaml:10:40: spec.policies[0].config.requestHeaders.x-a: must hold only visible ASCII, spaces, tabs and Latin-1 characters',
      'F/a.yaml:10:55: spec.policies[0].config.requestHeaders.x-b: must hold only visible ASCII, spaces, tabs and Latin-1 characters',
    ],
  },
  {
    title: 'a reference to a Service that does not exist is an error at the reference',
    files: { 'a.yaml': [...apiHead(), '  address: http://0.0.0.0:8081', '  services:', '    v1:', '      service: orders-backnd', route] },
    expected: ['F/a.yaml:8:16: spec.services.v1.service: Service "orders-backnd" does not exist'],
  },
  {
    title: 'two Services with one name are an error at the second, pointing at the first',
    files: {
      'a.yaml': [...serviceHead('db'), '  endpoints: [http://10.0.0.5:8080]'],
      'b.yaml': [...serviceHead('db'), '  endpoints: [http://10.0.0.6:8080]'],
    },
    expected: ['F/b.yaml:3:19: metadata.name: duplicate Service name "db" (first defined at F/a.yaml:3:19)'],
  },
  {
    title: 'base paths that are segment-wise prefixes of each other on one port overlap',
    files: {
      'a.yaml': [...apiHead('a'), '  address: http://0.0.0.0:8081/api', '  services: { v1: { address: http://10.0.0.5:8080, routes: [{}] } }'],
      'b.yaml': [...apiHead('b'), '  address: http://0.0.0.0:8081/api/v2/', '  services: { v1: { address: http://10.0.0.5:8080, routes: [{}] } }'],
    },
    expected: ['F/b.yaml:5:12: spec.address: base path "/api/v2" overlaps "/api" of ApiInstance a on port 8081 (F/a.yaml:5:12)'],
  },
  {
    title: 'the root base path overlaps every other base path on its port',
    files: {
      'a.yaml': [...apiHead('a'), '  address: http://0.0.0.0:8081/', '  services: { v1: { address: http://10.0.0.5:8080, routes: [{}] } }',
        '---', ...apiHead('b'), '  address: http://0.0.0.0:8081/zeta', '  services: { v1: { address: http://10.0.0.5:8080, routes: [{}] } }'],
    },
    expected: ['F/a.yaml:12:12: spec.address: base path "/zeta" overlaps "/" of ApiInstance a on port 8081 (F/a.yaml:5:12)'],
  },
  {
    title: 'TLS configured twice for one port is an error at the second tls',
    files: {
      'a.yaml': [...apiHead('a'), '  address: https://0.0.0.0:8443/a', '  tls: { certFile: cert.pem, keyFile: key.pem }', '  services: { v1: { address: http://10.0.0.5:8080, routes: [{}] } }',
        '---', ...apiHead('b'), '  address: https://0.0.0.0:8443/b', '  tls: { certFile: cert.pem, keyFile: key.pem }', '  services: { v1: { address: http://10.0.0.5:8080, routes: [{}] } }'],
      'cert.pem': 'x', 'key.pem': 'x',
    },
    expected: ['F/a.yaml:14:8: spec.tls: TLS for port 8443 is already configured by ApiInstance a (F/a.yaml:6:8)'],
  },
  {
    title: 'http and https on one port are an error',
    files: {
      'a.yaml': [...apiHead('a'), '  address: http://0.0.0.0:8080/a', '  services: { v1: { address: http://10.0.0.5:8080, routes: [{}] } }',
        '---', ...apiHead('b'), '  address: https://0.0.0.0:8080/b', '  tls: { certFile: cert.pem, keyFile: key.pem }', '  services: { v1: { address: http://10.0.0.5:8080, routes: [{}] } }'],
      'cert.pem': 'x', 'key.pem': 'x',
    },
    expected: ['F/a.yaml:12:12: spec.address: port 8080 already serves http (ApiInstance a at F/a.yaml:5:12); http and https cannot share a port'],
  },
  {
    title: 'an https address without tls on its port is an error',
    files: { 'a.yaml': [...apiHead(), '  address: https://0.0.0.0:8443', '  services: { v1: { address: http://10.0.0.5:8080, routes: [{}] } }'] },
    expected: ['F/a.yaml:5:12: spec.address: https on port 8443 needs tls on one ApiInstance of that port'],
  },
  {
    title: 'weights of a split that do not add up to 100 are an error at the first weight',
    files: {
      'a.yaml': [...apiHead(), '  address: http://0.0.0.0:8081', '  services:',
        '    v1: { address: http://10.0.0.5:8080, routes: [{ rules: [{ path: /v1(/.*) }], weight: 90 }] }',
        '    v2: { address: http://10.0.0.6:8080, routes: [{ rules: [{ path: /v1(/.*) }], weight: 20 }] }'],
    },
    expected: ['F/a.yaml:7:90: spec.services.v1.routes[0].weight: weights of routes with identical rules must add up to 100, got 110 (v1 routes[0]: 90, v2 routes[0]: 20)'],
  },
  {
    title: 'a split member without a weight is an error at that route',
    files: {
      'a.yaml': [...apiHead(), '  address: http://0.0.0.0:8081', '  services:',
        '    v1: { address: http://10.0.0.5:8080, routes: [{ rules: [{ path: /v1(/.*) }], weight: 100 }] }',
        '    v2: { address: http://10.0.0.6:8080, routes: [{ rules: [{ path: /v1(/.*) }] }] }'],
    },
    expected: ['F/a.yaml:8:51: spec.services.v2.routes[0]: weight is required: same rules as v1 routes[0] (a weighted split)'],
  },
  {
    title: 'a route alone with a weight other than 100 is an error',
    files: { 'a.yaml': [...apiHead(), '  address: http://0.0.0.0:8081', '  services:', '    v1: { address: http://10.0.0.5:8080, routes: [{ weight: 50 }] }'] },
    expected: ['F/a.yaml:7:61: spec.services.v1.routes[0].weight: the weight of a route without a split must be 100, got 50 (v1 routes[0]: 50)'],
  },
  {
    title: 'a negative or fractional weight is a schema error',
    files: { 'a.yaml': [...apiHead(), '  address: http://0.0.0.0:8081', '  services:', '    v1: { address: http://10.0.0.5:8080, routes: [{ weight: -5 }, { rules: [{ path: /b }], weight: 2.5 }] }'] },
    expected: [
      'F/a.yaml:7:61: spec.services.v1.routes[0].weight: must be >= 0',
      'F/a.yaml:7:100: spec.services.v1.routes[1].weight: must be an integer, got a number',
    ],
  },
  {
    title: 'a PolicyBinding whose target does not exist is an error at the target name',
    files: {
      'a.yaml': ['apiVersion: gatehouse/v1', 'kind: PolicyBinding', 'metadata: { name: strip }', 'spec:',
        '  targetRef: { kind: ApiInstance, name: ordres }', '  policyRef: { name: header-removal }', '  config: { requestHeaders: [x-debug] }'],
    },
    expected: ['F/a.yaml:5:41: spec.targetRef.name: ApiInstance "ordres" does not exist'],
  },
  {
    title: 'an endpoint that is not an http(s) URL with a host is an error',
    files: { 'a.yaml': [...serviceHead(), '  endpoints:', '    - http://10.0.0.5:8080', '    - tcp://10.0.0.6:8080', '    - { url: "http://", weight: 2 }'] },
    expected: [
      'F/a.yaml:7:7: spec.endpoints[1]: endpoint must be an http:// or https:// URL with a host, got "tcp://10.0.0.6:8080"',
      'F/a.yaml:8:14: spec.endpoints[2].url: endpoint must be an http:// or https:// URL with a host, got "http://"',
    ],
  },
  {
    title: 'a Service listing one endpoint twice is an error at the duplicate',
    files: { 'a.yaml': [...serviceHead(), '  endpoints: [http://10.0.0.5:8080, "http://10.0.0.5:8080/"]'] },
    expected: ['F/a.yaml:5:37: spec.endpoints[1]: duplicate endpoint http://10.0.0.5:8080 (also at index 0)'],
  },
  {
    title: 'a second Configuration document is an error at its kind',
    files: {
      'a.yaml': ['apiVersion: gatehouse/v1', 'kind: Configuration', 'metadata: { name: host }', 'spec: { workers: 2 }'],
      'b.yaml': ['apiVersion: gatehouse/v1', 'kind: Configuration', 'metadata: { name: host2 }', 'spec: { workers: 4 }'],
    },
    expected: ['F/b.yaml:2:7: kind: only one Configuration is allowed (another is at F/a.yaml:2:7)'],
  },
  {
    title: 'a missing environment variable is an error at the value that uses it',
    files: { 'a.yaml': ['apiVersion: gatehouse/v1', 'kind: Configuration', 'metadata: { name: host }', 'spec:', '  admin: { token: "Bearer ${env:ADMIN_TOKEN}" }'] },
    expected: ['F/a.yaml:5:19: spec.admin.token: environment variable ADMIN_TOKEN is not set'],
  },
  {
    title: 'an unreadable ${file:} is an error at the value that uses it',
    files: { 'a.yaml': ['apiVersion: gatehouse/v1', 'kind: Configuration', 'metadata: { name: host }', 'spec:', '  admin: { token: "${file:secrets/none.txt}" }'] },
    expected: ['F/a.yaml:5:19: spec.admin.token: cannot read file secrets/none.txt (ENOENT)'],
  },
  {
    title: 'workers must be auto or a positive integer',
    files: { 'a.yaml': ['apiVersion: gatehouse/v1', 'kind: Configuration', 'metadata: { name: host }', 'spec:', '  workers: many'] },
    expected: ['F/a.yaml:5:12: spec.workers: must be "auto" or an integer >= 1'],
  },
  {
    title: 'overload limits: a lag threshold below the 50 ms sampling period (other than 0, off) and a negative cap are errors',
    files: { 'a.yaml': ['apiVersion: gatehouse/v1', 'kind: Configuration', 'metadata: { name: host }', 'spec:', '  overload: { maxRequestsInFlight: -1, maxEventLoopLagMs: 20 }'] },
    expected: [
      'F/a.yaml:5:36: spec.overload.maxRequestsInFlight: must be >= 0',
      'F/a.yaml:5:59: spec.overload.maxEventLoopLagMs: must be >= 50',
    ],
  },
  {
    title: 'an overload lag threshold with a unit says what it must be',
    files: { 'a.yaml': ['apiVersion: gatehouse/v1', 'kind: Configuration', 'metadata: { name: host }', 'spec:', '  overload: { maxEventLoopLagMs: 500ms }'] },
    expected: ['F/a.yaml:5:34: spec.overload.maxEventLoopLagMs: must be 0 (off) or an integer >= 50'],
  },
  {
    title: 'client timeouts below 500 ms, and a listeners key that is not host:port, are errors',
    files: {
      'a.yaml': ['apiVersion: gatehouse/v1', 'kind: Configuration', 'metadata: { name: host }', 'spec:',
        '  timeouts: { sendTimeoutMs: 100 }',
        '  listeners: { "http://127.0.0.1:8080": {} }'],
    },
    expected: [
      'F/a.yaml:5:30: spec.timeouts.sendTimeoutMs: must be >= 500',
      'F/a.yaml:6:16: spec.listeners["http://127.0.0.1:8080"]: invalid key',
    ],
  },
  {
    title: 'a listeners key that no ApiInstance opens is an error that lists the listeners',
    files: {
      'a.yaml': ['apiVersion: gatehouse/v1', 'kind: Configuration', 'metadata: { name: host }', 'spec:',
        '  listeners:',
        '    "127.0.0.1:9999": { timeouts: { bodyIdleTimeoutMs: 1000 } }',
        '    "[::1]:8080": { timeouts: { sendTimeoutMs: 1000 } }'],
      'b.yaml': [...apiHead('b'), '  address: http://[::1]:8080/', '  services: { all: { endpoints: [http://10.0.0.5:8080], routes: [{}] } }'],
    },
    expected: ['F/a.yaml:6:23: spec.listeners["127.0.0.1:9999"]: no ApiInstance listens on 127.0.0.1:9999 (listeners: [::1]:8080)'],
  },
  {
    title: 'a trusted proxy that is not a CIDR is an error at the list item',
    files: { 'a.yaml': ['apiVersion: gatehouse/v1', 'kind: Configuration', 'metadata: { name: host }', 'spec:', '  trustedProxies: [10.0.0.0/8, 10.0.0.0/33]'] },
    expected: ['F/a.yaml:5:32: spec.trustedProxies[1]: must be an IP address or CIDR'],
  },
  {
    title: 'an unknown load-balancing algorithm lists the choices',
    files: { 'a.yaml': [...serviceHead(), '  endpoints: [http://10.0.0.5:8080]', '  loadBalancing: random'] },
    expected: ['F/a.yaml:6:18: spec.loadBalancing: must be one of: round-robin, least-request'],
  },
  {
    title: 'response header limits out of range are errors at the values',
    files: { 'a.yaml': [...serviceHead(), '  endpoints: [http://10.0.0.5:8080]', '  maxResponseHeaderBytes: 512', '  maxResponseHeaderCount: 0'] },
    expected: [
      'F/a.yaml:6:27: spec.maxResponseHeaderBytes: must be >= 1024',
      'F/a.yaml:7:27: spec.maxResponseHeaderCount: must be >= 1',
    ],
  },
  {
    title: 'response header limits must be integers within their maximum',
    files: { 'a.yaml': [...serviceHead(), '  endpoints: [http://10.0.0.5:8080]', '  maxResponseHeaderBytes: 16KiB', '  maxResponseHeaderCount: 20000'] },
    expected: [
      'F/a.yaml:6:27: spec.maxResponseHeaderBytes: must be an integer, got a string',
      'F/a.yaml:7:27: spec.maxResponseHeaderCount: must be <= 10000',
    ],
  },
  {
    title: 'a services entry with both service and address is an error on the entry',
    files: {
      'a.yaml': [...apiHead(), '  address: http://0.0.0.0:8081', '  services:', '    v1:', '      service: backend', '      address: http://10.0.0.5:8080', route,
        '---', ...serviceHead(), '  endpoints: [http://10.0.0.5:8080]'],
    },
    expected: ['F/a.yaml:8:7: spec.services.v1: service, address and endpoints are exclusive (got service and address)'],
  },
  {
    title: 'a typo inside an endpoint object is reported, not a vague union error',
    files: { 'a.yaml': [...serviceHead(), '  endpoints: [{ url: http://10.0.0.5:8080, wieght: 3 }]'] },
    expected: ['F/a.yaml:5:44: spec.endpoints[0].wieght: unknown field (did you mean "weight"?)'],
  },
  {
    title: 'a listener address with a query string is an error',
    files: { 'a.yaml': [...apiHead(), '  address: http://0.0.0.0:8081/api?x=1', '  services: { v1: { address: http://10.0.0.5:8080, routes: [{}] } }'] },
    expected: ['F/a.yaml:5:12: spec.address: must not contain a query or fragment'],
  },
  {
    title: 'a document that is not a mapping is an error',
    files: { 'a.yaml': ['- just', '- a list'] },
    expected: ['F/a.yaml:1:1: a resource must be a mapping with apiVersion, kind, metadata and spec'],
  },
]

describe('config errors', () => {
  for (const c of cases) {
    test(c.title, async () => {
      const dir = fx.dir(c.files)
      const got = await errorsOf(dir, c.env)
      assert.deepEqual(got, c.expected.map((e) => e.replaceAll('F/', `${dir}${path.sep}`)))
    })
  }

  test('a missing directory is an error naming the directory', async () => {
    const dir = path.join(fx.root, 'no-such-dir')
    assert.deepEqual(await errorsOf(dir), [`${dir}: cannot read config directory (ENOENT)`])
  })

  test('the file in an error is the directory as given joined with the file name', async () => {
    const dir = fx.dir({ 'orders.yaml': [...serviceHead(), '  endpoints: []'] })
    const rel = path.relative(process.cwd(), dir)
    assert.deepEqual(await errorsOf(rel), [`${path.join(rel, 'orders.yaml')}:5:14: spec.endpoints: must not be empty`])
  })
})
