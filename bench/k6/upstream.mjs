#!/usr/bin/env node
// A local upstream for bench/k6/gateway on 127.0.0.1:8081 (PORT to change):
//   GET  /     about 100 bytes     GET /64k   64 KiB     POST /post  reads the body, answers "ok"
// For numbers that compare proxies use bench/compare.mjs (an nginx upstream); this one only
// has to be there for the k6 scripts. Stops on Ctrl-C / SIGTERM.
import http from 'node:http'

const port = Number(process.env.PORT ?? 8081)
const small = Buffer.alloc(100, 'x')
const big = Buffer.alloc(64 * 1024, 'y')
const server = http.createServer((req, res) => {
  if (req.method === 'POST') {
    let n = 0
    req.on('data', (d) => { n += d.length })
    req.on('end', () => res.writeHead(200, { 'content-type': 'text/plain', 'x-body-bytes': String(n) }).end('ok'))
    return
  }
  req.resume()
  const body = req.url === '/64k' ? big : small
  res.writeHead(200, { 'content-type': 'application/octet-stream', 'content-length': body.length }).end(body)
})
server.keepAliveTimeout = 75_000
server.listen(port, '127.0.0.1', () => console.log(`upstream on http://127.0.0.1:${port}`))
for (const sig of ['SIGINT', 'SIGTERM']) process.on(sig, () => server.close(() => process.exit(0)))
