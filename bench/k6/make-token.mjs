#!/usr/bin/env node
// Prints an HS256 token the chain route of bench/k6/gateway accepts, signed with
// $BENCH_JWT_SECRET (the gateway reads the same variable). Valid for 24 h.
//   export BENCH_JWT_SECRET=$(head -c 32 /dev/urandom | base64)
//   TOKEN=$(node bench/k6/make-token.mjs)
import { SignJWT } from 'jose'

const secret = process.env.BENCH_JWT_SECRET
if (!secret || Buffer.byteLength(secret) < 32) {
  console.error('make-token: set BENCH_JWT_SECRET (at least 32 bytes), the same as for the gateway')
  process.exit(2)
}
const token = await new SignJWT({ sub: process.env.SUB ?? 'k6', scope: 'bench' })
  .setProtectedHeader({ alg: 'HS256' })
  .setIssuer('gatehouse-bench').setAudience('bench')
  .setIssuedAt().setExpirationTime('24h')
  .sign(new TextEncoder().encode(secret))
console.log(token)
