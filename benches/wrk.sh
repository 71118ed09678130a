#!/usr/bin/env bash
# usage: benches/wrk.sh <label> [env...]: starts the release demo with the env, measures /health and /me
set -e
label=$1; shift
BIN=${BIN:-target/release/examples/demo}
port=$((4000 + RANDOM % 1000))
env ADDR=127.0.0.1:$port JWT_SECRET=0123456789abcdef0123456789abcdef "$@" $BIN > /tmp/demo-$label.log 2>&1 &
pid=$!
sleep 1.5
token=$(curl -s -X POST http://127.0.0.1:$port/login -H 'content-type: application/json' -d '{"username":"alice","password":"wonderland"}' | sed 's/.*"access_token":"\([^"]*\)".*/\1/')
for round in 1 2; do
  h=$(wrk -t2 -c64 -d8s http://127.0.0.1:$port/health | awk '/Requests\/sec/{print $2}')
  m=$(wrk -t2 -c64 -d8s -H "Authorization: Bearer $token" http://127.0.0.1:$port/me | awk '/Requests\/sec/{print $2}')
  echo "$label round $round: /health $h req/s, /me $m req/s, ratio $(python3 -c "print(round($m/$h,3))")"
done
kill $pid
