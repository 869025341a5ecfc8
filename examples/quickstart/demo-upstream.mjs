// A tiny upstream for the quickstart: answers every request with a JSON echo of what
// reached it (method, path, query, headers), so the gateway's rewriting is visible.
import http from 'node:http'

export function startDemoUpstream(port = 9000, host = '127.0.0.1') {
  const server = http.createServer((req, res) => {
    let bytes = 0
    req.on('data', (c) => { bytes += c.length })
    req.on('end', () => {
      const body = JSON.stringify({ upstream: 'demo', method: req.method, url: req.url, headers: req.headers, bodyBytes: bytes }, null, 2) + '\n'
      res.writeHead(200, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) })
      res.end(body)
    })
  })
  return new Promise((resolve, reject) => {
    server.once('error', reject)
    server.listen(port, host, () => resolve(server))
  })
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const port = Number(process.env.PORT ?? 9000)
  await startDemoUpstream(port)
  console.log(`demo upstream on http://127.0.0.1:${port}`)
}
