#!/bin/sh
# Runs Gatehouse with the Node.js runtime it was built and tested with.
exec /usr/lib/gatehouse/bin/node /usr/lib/gatehouse/dist/src/cli/main.js "$@"
