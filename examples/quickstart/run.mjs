// `npm start`: the demo upstream plus the gateway on the quickstart config, in the
// foreground. Ctrl-C stops both (the gateway drains first).
import { spawn } from 'node:child_process'
import { fileURLToPath } from 'node:url'
import { startDemoUpstream } from './demo-upstream.mjs'

const here = (p) => fileURLToPath(new URL(p, import.meta.url))
const upstream = await startDemoUpstream(9000)
console.log('demo upstream listening on http://127.0.0.1:9000')
const gw = spawn(process.execPath, [here('../../dist/src/cli/main.js'), 'start', '--config', here('./conf.d')], { stdio: 'inherit' })
console.log('gateway starting: try  curl -i http://127.0.0.1:8080/demo/v1/hello')
for (const sig of ['SIGINT', 'SIGTERM']) process.on(sig, () => gw.kill(sig))
gw.on('exit', (code) => { upstream.close(); process.exit(code ?? 0) })
