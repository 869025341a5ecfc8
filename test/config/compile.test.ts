/** Good configs and the exact Snapshot they compile to. */
import assert from 'node:assert/strict'
import { createHash } from 'node:crypto'
import path from 'node:path'
import { after, describe, test } from 'node:test'
import { apiHead, Fixtures, serviceHead, snapshotOf } from './helpers.js'

const fx = new Fixtures()
after(() => fx.cleanup())

const SERVICE_DEFAULTS = {
  loadBalancing: 'round-robin',
  connectTimeoutMs: 2000,
  responseTimeoutMs: 15000,
  retries: 1,
  keepAliveTimeoutMs: 4000,
  connectionsPerEndpoint: 128,
  maxResponseHeaderBytes: 16384,
  maxResponseHeaderCount: 100,
  passiveHealth: { consecutiveFailures: 5, baseEjectionMs: 10000, maxEjectionMs: 300000 },
  activeHealth: null,
}

const ORDERS = {
  'orders.yaml': [
    ...apiHead('orders'),
    '  address: http://0.0.0.0:8081/orders/',
    '  services:',
    '    v1:',
    '      service: orders-backend',
    '      routes:',
    '        - rules: [{ path: /v1(/.*), methods: GET|POST, headers: { X-Tenant: "a.*" } }]',
    '          weight: 90',
    '        - rules: [{ path: /health }]',
    '    v2:',
    '      address: http://10.0.0.9:9000/base/',
    '      routes: [{ rules: [{ path: /v1(/.*), methods: GET|POST, headers: { x-tenant: "a.*" } }], weight: 10 }]',
    '  policies:',
    '    - policyRef: { name: header-injection }',
    '      config: { requestHeaders: { x-gw: gatehouse } }',
    '    - policyRef: { name: cors }',
    '      config: { allowOrigins: ["https://app.example"] }',
    '---',
    ...serviceHead('orders-backend'),
    '  endpoints: [http://10.0.0.5:8080, { url: "http://10.0.0.6:8080/api/", weight: 3 }]',
    '  loadBalancing: least-request',
    '  timeouts: { responseMs: 30000 }',
    '  healthChecks: { active: { path: /healthz } }',
    '---',
    'apiVersion: gatehouse/v1',
    'kind: PolicyBinding',
    'metadata: { name: strip-debug }',
    'spec:',
    '  targetRef: { kind: ApiInstance, name: orders }',
    '  policyRef: { name: header-removal }',
    '  order: 10',
    '  rules: [{ path: /v1/admin(/.*) }]',
    '  config: { responseHeaders: [x-debug] }',
  ],
  'root.yaml': [
    ...apiHead('catalog'),
    '  address: http://127.0.0.1:8082',
    '  preserveHost: true',
    '  maxRequestBodyBytes: 1024',
    '  services: { all: { endpoints: ["https://catalog.internal"], routes: [{}] } }',
  ],
  'shared-port.yaml': [
    ...apiHead('users'),
    '  address: http://0.0.0.0:8081/users/v2',
    '  services: { all: { service: orders-backend, routes: [{}] } }',
  ],
}

describe('compiling a valid config', () => {
  test('listeners, apis, routes and policies have the exact compiled shape', async () => {
    const snap = await snapshotOf(fx.dir(ORDERS))
    assert.deepEqual(snap.listeners, [
      {
        host: '0.0.0.0', port: 8081, tls: null, timeouts: { bodyIdleTimeoutMs: 60000, sendTimeoutMs: 60000 },
        apis: [
          // Longest base path first.
          { name: 'users', basePath: '/users/v2', maxRequestBodyBytes: 16777216, preserveHost: false,
            routes: [{ id: 'users/all#0', rules: [], targets: [{ service: 'orders-backend', weight: 100 }] }],
            policies: [] },
          {
            name: 'orders', basePath: '/orders', maxRequestBodyBytes: 16777216, preserveHost: false,
            routes: [
              // The split group takes the id and position of its first member.
              {
                id: 'orders/v1#0',
                rules: [{ path: '/v1(/.*)', methods: 'GET|POST', headers: { 'x-tenant': 'a.*' } }],
                targets: [{ service: 'orders-backend', weight: 90 }, { service: 'orders.v2', weight: 10 }],
              },
              { id: 'orders/v1#1', rules: [{ path: '/health' }], targets: [{ service: 'orders-backend', weight: 100 }] },
            ],
            policies: [
              // cors (registry order 10) was declared first, so it stays ahead of the binding's explicit 10.
              {
                name: 'cors', order: 10, source: 'ApiInstance orders policies[1]', rules: [],
                config: {
                  allowOrigins: ['https://app.example'], allowMethods: ['GET', 'HEAD', 'PUT', 'PATCH', 'POST', 'DELETE'],
                  allowCredentials: false, rejectUnknownOrigins: false,
                },
              },
              {
                name: 'header-removal', order: 10, source: 'PolicyBinding strip-debug', rules: [{ path: '/v1/admin(/.*)' }],
                config: { responseHeaders: ['x-debug'] },
              },
              {
                name: 'header-injection', order: 81, source: 'ApiInstance orders policies[0]', rules: [],
                config: { requestHeaders: { 'x-gw': 'gatehouse' }, overwrite: true },
              },
            ],
          },
        ],
      },
      {
        host: '127.0.0.1', port: 8082, tls: null, timeouts: { bodyIdleTimeoutMs: 60000, sendTimeoutMs: 60000 },
        apis: [{
          name: 'catalog', basePath: '', maxRequestBodyBytes: 1024, preserveHost: true,
          routes: [{ id: 'catalog/all#0', rules: [], targets: [{ service: 'catalog.all', weight: 100 }] }],
          policies: [],
        }],
      },
    ])
  })

  test('services are resolved, inline ones synthesised, endpoints split and defaults filled', async () => {
    const snap = await snapshotOf(fx.dir(ORDERS))
    assert.deepEqual(snap.services, {
      'catalog.all': { ...SERVICE_DEFAULTS, name: 'catalog.all', endpoints: [{ origin: 'https://catalog.internal', pathPrefix: '', weight: 1 }] },
      'orders-backend': {
        ...SERVICE_DEFAULTS,
        name: 'orders-backend',
        endpoints: [{ origin: 'http://10.0.0.5:8080', pathPrefix: '', weight: 1 }, { origin: 'http://10.0.0.6:8080', pathPrefix: '/api', weight: 3 }],
        loadBalancing: 'least-request',
        responseTimeoutMs: 30000,
        activeHealth: { path: '/healthz', intervalMs: 5000, timeoutMs: 2000, healthyThreshold: 2, unhealthyThreshold: 3, expectedStatus: [200, 399] },
      },
      'orders.v2': { ...SERVICE_DEFAULTS, name: 'orders.v2', endpoints: [{ origin: 'http://10.0.0.9:9000', pathPrefix: '/base', weight: 1 }] },
    })
  })

  test('a Service nobody references is left out of the snapshot', async () => {
    const dir = fx.dir({ 'a.yaml': [...serviceHead('unused'), '  endpoints: [http://10.0.0.5:8080]'] })
    assert.deepEqual((await snapshotOf(dir)).services, {})
  })

  test('client timeouts: Configuration.timeouts for every listener, Configuration.listeners overrides one', async () => {
    const snap = await snapshotOf(fx.dir({
      ...ORDERS,
      'host.yaml': [
        'apiVersion: gatehouse/v1',
        'kind: Configuration',
        'metadata: { name: host }',
        'spec:',
        '  timeouts: { bodyIdleTimeoutMs: 5000 }',
        '  listeners:',
        '    "127.0.0.1:8082": { timeouts: { sendTimeoutMs: 2000 } }',
      ],
    }))
    assert.deepEqual(snap.listeners.map((l) => [l.port, l.timeouts]), [
      [8081, { bodyIdleTimeoutMs: 5000, sendTimeoutMs: 60000 }],
      [8082, { bodyIdleTimeoutMs: 5000, sendTimeoutMs: 2000 }],
    ])
  })

  test('a Service\'s response header limits are compiled as written', async () => {
    const dir = fx.dir({
      'a.yaml': [...apiHead(), '  address: http://0.0.0.0:8081', '  services: { v1: { service: backend, routes: [{}] } }', '---',
        ...serviceHead(), '  endpoints: [http://10.0.0.5:8080]', '  maxResponseHeaderBytes: 65536', '  maxResponseHeaderCount: 200'],
    })
    const svc = (await snapshotOf(dir)).services.backend!
    assert.deepEqual([svc.maxResponseHeaderBytes, svc.maxResponseHeaderCount], [65536, 200])
  })

  test('host settings default without a Configuration', async () => {
    const snap = await snapshotOf(fx.dir())
    assert.deepEqual(snap.host, {
      workers: 'auto',
      admin: { host: '127.0.0.1', port: 9901, token: null },
      drainTimeoutMs: 25000,
      heartbeatIntervalMs: 1000,
      heartbeatMisses: 5,
      watch: false,
      logLevel: 'info',
      accessLogs: true,
      accessLogQuery: false,
      logDirectory: null,
      trustedProxies: [],
      limits: { maxUrlBytes: 4096, maxHeaderBytes: 8192, maxHeaderCount: 40, requestBufferBytes: 65536, responseBufferBytes: 1048576, responseBufferTotalBytes: 67108864 },
      overload: { maxRequestsInFlight: 10000, maxEventLoopLagMs: 500, maxConnections: 20000 },
      redis: null,
      metrics: { enabled: true, address: null },
      tracing: {
        enabled: false, endpoint: 'http://127.0.0.1:4318/v1/traces', sampling: 1, serviceName: 'gatehouse',
        resourceAttributes: {}, headers: {},
      },
    })
  })

  test('a Configuration is compiled into host settings with CIDRs made canonical', async () => {
    const dir = fx.dir({
      'host.yaml': [
        'apiVersion: gatehouse/v1', 'kind: Configuration', 'metadata: { name: host }', 'spec:',
        '  workers: 4',
        '  sharedStorage: { redis: { address: "127.0.0.1:6379", db: 2 } }',
        '  logging: { runtimeLogs: { logLevel: debug }, accessLogs: { enabled: false, includeQuery: true }, directory: logs }',
        '  metrics: { enabled: true }',
        '  tracing: { enabled: true, endpoint: "http://127.0.0.1:4318", sampling: 0.01 }',
        '  admin: { address: "http://[::1]:9999", token: t0ken }',
        '  drainTimeoutMs: 5000',
        '  heartbeat: { intervalMs: 500, misses: 3 }',
        '  watch: true',
        '  trustedProxies: [10.0.0.0/8, 192.168.1.1, "::1"]',
        '  limits: { maxUrlBytes: 2048 }',
        '  overload: { maxRequestsInFlight: 64, maxEventLoopLagMs: 0 }',
      ],
    })
    assert.deepEqual((await snapshotOf(dir)).host, {
      workers: 4,
      admin: { host: '::1', port: 9999, token: 't0ken' },
      drainTimeoutMs: 5000,
      heartbeatIntervalMs: 500,
      heartbeatMisses: 3,
      watch: true,
      logLevel: 'debug',
      accessLogs: false,
      accessLogQuery: true,
      logDirectory: path.join(dir, 'logs'),
      trustedProxies: ['10.0.0.0/8', '192.168.1.1/32', '::1/128'],
      limits: { maxUrlBytes: 2048, maxHeaderBytes: 8192, maxHeaderCount: 40, requestBufferBytes: 65536, responseBufferBytes: 1048576, responseBufferTotalBytes: 67108864 },
      overload: { maxRequestsInFlight: 64, maxEventLoopLagMs: 0, maxConnections: 20000 },
      redis: {
        hosts: [['127.0.0.1', 6379]], sentinelName: null, sentinelPassword: null,
        username: null, password: null, db: 2, tls: false, commandTimeoutMs: 250,
      },
      metrics: { enabled: true, address: null },
      tracing: {
        enabled: true, endpoint: 'http://127.0.0.1:4318/v1/traces', sampling: 0.01, serviceName: 'gatehouse',
        resourceAttributes: {}, headers: {},
      },
    })
  })

  test('a Redis Sentinel setup compiles to its sentinels and master name', async () => {
    const dir = fx.dir({
      'host.yaml': [
        'apiVersion: gatehouse/v1', 'kind: Configuration', 'metadata: { name: host }', 'spec:',
        '  sharedStorage: { redis: { sentinel: { name: main, addresses: ["10.0.0.1:26379", "[::1]:26380"] }, password: pw, commandTimeoutMs: 100 } }',
      ],
    })
    assert.deepEqual((await snapshotOf(dir)).host.redis, {
      hosts: [['10.0.0.1', 26379], ['::1', 26380]], sentinelName: 'main', sentinelPassword: null,
      username: null, password: 'pw', db: 0, tls: false, commandTimeoutMs: 100,
    })
  })

  test('https listeners carry the TLS of the port, with file paths resolved against the directory', async () => {
    const dir = fx.dir({
      'a.yaml': [...apiHead('a'), '  address: https://[::]:8443/a', '  tls: { certFile: tls/cert.pem, keyFile: /dev/null, passphrase: pw }',
        '  services: { v1: { address: http://10.0.0.5:8080, routes: [{}] } }',
        '---', ...apiHead('b'), '  address: https://[::]:8443/b', '  services: { v1: { address: http://10.0.0.5:8080, routes: [{}] } }'],
      'tls/cert.pem': 'x',
    })
    const [l] = (await snapshotOf(dir)).listeners
    assert.deepEqual(l?.tls, { certFile: path.join(dir, 'tls/cert.pem'), keyFile: '/dev/null', passphrase: 'pw' })
    assert.equal(l?.host, '::')
    assert.deepEqual(l?.apis.map((a) => a.basePath), ['/a', '/b'])
  })

  test('a 0% member of a split is kept in config but gets no traffic', async () => {
    const dir = fx.dir({
      'a.yaml': [...apiHead(), '  address: http://0.0.0.0:8081', '  services:',
        '    old: { address: http://10.0.0.5:8080, routes: [{ weight: 0 }] }',
        '    new: { address: http://10.0.0.6:8080, routes: [{ weight: 100 }] }'],
    })
    const route = (await snapshotOf(dir)).listeners[0]?.apis[0]?.routes
    assert.deepEqual(route, [{ id: 'orders/old#0', rules: [], targets: [{ service: 'orders.new', weight: 100 }] }])
  })

  test('the snapshot is frozen, plain JSON and survives structuredClone', async () => {
    const snap = await snapshotOf(fx.dir(ORDERS))
    assert.ok(Object.isFrozen(snap) && Object.isFrozen(snap.listeners[0]?.apis[0]?.routes[0]?.rules))
    assert.deepEqual(structuredClone(snap), snap)
    assert.deepEqual(JSON.parse(JSON.stringify(snap)), snap)
  })

  test('the version is the first 16 hex chars of sha256 over the rest of the snapshot and the referenced files', async () => {
    const { version, ...rest } = await snapshotOf(fx.dir(ORDERS))
    assert.match(version, /^[0-9a-f]{16}$/)
    // ORDERS names no files: the file digest is that of empty input.
    const noFiles = createHash('sha256').digest('hex')
    assert.equal(version, createHash('sha256').update(JSON.stringify(rest)).update(noFiles).digest('hex').slice(0, 16))
  })

  test('the version is stable for the same input and changes with the input', async () => {
    const a = await snapshotOf(fx.dir(ORDERS))
    const b = await snapshotOf(fx.dir(ORDERS))
    const changed = { ...ORDERS, 'root.yaml': ORDERS['root.yaml'].map((l) => l.replace('1024', '2048')) }
    const c = await snapshotOf(fx.dir(changed))
    assert.equal(a.version, b.version)
    assert.notEqual(a.version, c.version)
  })
})
