import { loadConfigDir, formatConfigError, redact } from './src/config/load.js'
const r = await loadConfigDir(process.argv[2]!, { env: { SECRET: 's3cr3t' } })
if (!r.ok) for (const e of r.errors) console.log(formatConfigError(e))
else console.log(JSON.stringify(redact(r.snapshot, r.secrets), null, 1), r.secrets, r.files)
