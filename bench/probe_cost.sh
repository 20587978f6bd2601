#!/usr/bin/env bash
# First figure of what vigie costs per probe: N HTTP checks against a real nginx on
# loopback, run for D seconds; CPU time from /proc (utime+stime of vigie only),
# probes completed from vigie's own /metrics, lag and RSS.
# Usage: bench/probe_cost.sh [checks=2000] [interval_ms=2000] [seconds=30] [build=build]
# (The full benchmark, side by side with blackbox_exporter, comes with issue 8.)
set -euo pipefail
cd "$(dirname "$0")/.."
n=${1:-2000}; interval=${2:-2000}; secs=${3:-30}; build=${4:-build}
vigie="$build/vigie"
[[ -x $vigie ]] || { echo "build vigie first: cmake --build $build --target vigie"; exit 1; }
tmp=$(mktemp -d); trap 'kill $(cat $tmp/nginx.pid 2>/dev/null) $vpid 2>/dev/null || true; rm -rf $tmp' EXIT
free_port() { python3 -c 'import socket;s=socket.socket();s.bind(("127.0.0.1",0));print(s.getsockname()[1])'; }
np=$(free_port); vp=$(free_port)
mkdir -p $tmp/root $tmp/logs
echo '{"status":"pass","version":"1.0","checks":{"db:ping":[{"status":"pass"}]}}' > $tmp/root/health
cat > $tmp/nginx.conf <<NGX
worker_processes 1; daemon on; pid $tmp/nginx.pid; error_log $tmp/logs/error.log; user root;
events { worker_connections 4096; }
http { access_log off; client_body_temp_path $tmp; proxy_temp_path $tmp; fastcgi_temp_path $tmp;
  uwsgi_temp_path $tmp; scgi_temp_path $tmp;
  server { listen 127.0.0.1:$np; root $tmp/root; default_type application/health+json; } }
NGX
nginx -c $tmp/nginx.conf -p $tmp
{
  echo "listen: \"127.0.0.1:$vp\""
  echo "defaults: {interval: ${interval}ms, timeout: 1s}"
  echo "max_in_flight: 4096"
  echo "services:"
  for ((i = 0; i < n; i++)); do
    echo "  - {name: s$i, checks: [{name: health, http: {url: \"http://127.0.0.1:$np/health?i=$i\"}}]}"
  done
} > $tmp/vigie.yaml
$vigie --config $tmp/vigie.yaml --log-level warn > $tmp/vigie.log 2>&1 & vpid=$!
sleep $(( interval / 1000 + 2 ))   # one full interval to warm up
probes() { curl -s 127.0.0.1:$vp/metrics | awk '/^vigie_probes_total/ {s+=$2} END {print s+0}'; }
cpu() { awk '{print $14+$15}' /proc/$vpid/stat; }
tck=$(getconf CLK_TCK)
p0=$(probes); c0=$(cpu); t0=$(date +%s.%N)
sleep "$secs"
p1=$(probes); c1=$(cpu); t1=$(date +%s.%N)
rss=$(awk '/VmRSS/ {print $2}' /proc/$vpid/status); hwm=$(awk '/VmHWM/ {print $2}' /proc/$vpid/status)
lag=$(curl -s 127.0.0.1:$vp/metrics | awk '/^vigie_scheduler_lag_seconds_(sum|count)/ {v[$1]=$2} END {for (k in v) if (k ~ /sum/) s=v[k]; else c=v[k]; printf "%.3f", (c? s/c*1000 : 0)}')
python3 - "$n" "$interval" "$p0" "$p1" "$c0" "$c1" "$t0" "$t1" "$tck" "$rss" "$hwm" "$lag" <<'PY'
import sys
n,interval,p0,p1,c0,c1,t0,t1,tck,rss,hwm,lag=sys.argv[1:]
probes=float(p1)-float(p0); wall=float(t1)-float(t0); cpu=(float(c1)-float(c0))/float(tck)
print(f"checks={n} interval={interval}ms wall={wall:.1f}s probes={probes:.0f} ({probes/wall:.0f}/s)")
print(f"cpu={cpu:.2f}s  cpu_per_probe={cpu/probes*1e6:.0f}us  cpu_share={cpu/wall*100:.0f}% of one core")
print(f"rss={int(rss)/1024:.1f}MiB hwm={int(hwm)/1024:.1f}MiB  mean_lag={lag}ms")
PY
