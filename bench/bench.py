#!/usr/bin/env python3
"""vigie's benchmark: what a probe costs, side by side with the machine's limit and
blackbox_exporter, measured with the operating system's own accounting.

Run through bench/run.sh (which builds vigie first). Every figure comes from /proc
(utime+stime of each process, VmRSS, VmHWM, open descriptors) or from counters read
over HTTP; nothing is estimated. Targets are a real nginx on loopback (one distinct
/svc/<i>/health URL per check) and, for hung targets, a small server of this script
that accepts connections and never answers.

CPU placement on a 2-core machine: the prober being measured (vigie, wrk,
blackbox_exporter) runs on core 1, the targets (nginx, the hung server) on core 0.
"""

import argparse
import datetime
import http.client
import json
import math
import os
import platform
import re
import resource
import selectors
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.parse

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CLK_TCK = os.sysconf("SC_CLK_TCK")
PAGE = os.sysconf("SC_PAGE_SIZE")
PROBER_CPU = "1"  # the process measured
TARGET_CPU = "0"  # nginx, the hung server

HEALTH_BODY = ('{"status":"pass","version":"1.4.2","releaseId":"1.4.2-7",'
               '"checks":{"db:ping":[{"status":"pass","observedValue":1}],'
               '"disk:free":[{"status":"pass","observedValue":0.42}]}}')

RESULTS_BEGIN = "<!-- bench:begin (written by bench/run.sh --full --results; do not edit) -->"
RESULTS_END = "<!-- bench:end -->"


# ---------------------------------------------------------------- OS accounting

def cpu_seconds(pid):
    """utime + stime of every thread of `pid`, dead threads included (/proc/pid/stat)."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def thread_cpu(pid, name):
    """utime + stime of the threads of `pid` called `name` (0 when there is none)."""
    total = 0.0
    try:
        tids = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return 0.0
    for tid in tids:
        try:
            with open(f"/proc/{pid}/task/{tid}/comm") as f:
                if f.read().strip() != name:
                    continue
            with open(f"/proc/{pid}/task/{tid}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
            total += (int(fields[11]) + int(fields[12])) / CLK_TCK
        except OSError:
            continue
    return total


def run_delay(pid):
    """Seconds the main (loop) thread of `pid` spent runnable but waiting for a CPU
    (/proc/<pid>/task/<pid>/schedstat): what other processes' load costs it."""
    try:
        with open(f"/proc/{pid}/task/{pid}/schedstat") as f:
            return int(f.read().split()[1]) / 1e9
    except (OSError, IndexError, ValueError):
        return 0.0


def status_kib(pid, key):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(key + ":"):
                return int(line.split()[1])
    return 0


def open_fds(pid):
    try:
        return len(os.listdir(f"/proc/{pid}/fd"))
    except OSError:
        return 0


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_port(port, deadline_s=20.0):
    end = time.monotonic() + deadline_s
    while time.monotonic() < end:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"nothing listens on 127.0.0.1:{port} after {deadline_s} s")


def pinned(cpu, argv):
    return ["taskset", "-c", cpu] + argv if shutil.which("taskset") else argv


def http_get(port, path, timeout=60.0):
    """(status, body bytes, seconds from request to last byte)."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    t0 = time.perf_counter()
    conn.request("GET", path)
    resp = conn.getresponse()
    body = resp.read()
    dt = time.perf_counter() - t0
    conn.close()
    return resp.status, body, dt


def stop_process(p, timeout=10.0):
    if p.poll() is not None:
        return
    p.send_signal(signal.SIGTERM)
    try:
        p.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        p.kill()
        p.wait()


# ---------------------------------------------------------------- Prometheus text

def parse_metrics(body, families):
    """{(name, labels text): value} for the lines of the given families only."""
    out = {}
    prefixes = tuple(f.encode() for f in families)
    for line in body.split(b"\n"):
        if not line.startswith(prefixes):
            continue
        key, _, value = line.rpartition(b" ")
        name, _, labels = key.partition(b"{")
        out[(name.decode(), labels.rstrip(b"}").decode())] = float(value)
    return out


def metric_sum(m, name, where=None):
    return sum(v for (n, labels), v in m.items() if n == name and (where is None or where(labels)))


def lag_buckets(m):
    buckets = []
    for (n, labels), v in m.items():
        if n != "vigie_scheduler_lag_seconds_bucket":
            continue
        le = re.search(r'le="([^"]+)"', labels).group(1)
        buckets.append((math.inf if le == "+Inf" else float(le), v))
    return sorted(buckets)


def quantile(q, before, after):
    """histogram_quantile over the difference of two bucket lists (linear inside a bucket)."""
    b0 = dict(before)
    buckets = [(le, c - b0.get(le, 0.0)) for le, c in after]
    if not buckets or buckets[-1][1] <= 0:
        return None
    rank = q * buckets[-1][1]
    prev_le, prev_c = 0.0, 0.0
    for le, c in buckets:
        if c >= rank:
            if math.isinf(le):
                return prev_le
            if c == prev_c:
                return le
            return prev_le + (le - prev_le) * (rank - prev_c) / (c - prev_c)
        prev_le, prev_c = le, c
    return prev_le


# ---------------------------------------------------------------- targets

class Nginx:
    """A real nginx on loopback: /svc/<i>/health answers a health+json page."""

    def __init__(self, tmp):
        self.dir = os.path.join(tmp, "nginx")
        os.makedirs(os.path.join(self.dir, "logs"), exist_ok=True)
        self.port = free_port()
        d = self.dir
        conf = f"""
worker_processes 1; daemon off; master_process off;
pid {d}/nginx.pid; error_log {d}/logs/error.log warn;
worker_rlimit_nofile 65536;
events {{ worker_connections 60000; multi_accept on; }}
http {{
  access_log off; keepalive_timeout 5s;
  client_body_temp_path {d}; proxy_temp_path {d}; fastcgi_temp_path {d};
  uwsgi_temp_path {d}; scgi_temp_path {d};
  server {{
    listen 127.0.0.1:{self.port} backlog=4096;
    location = /nginx_status {{ stub_status; }}
    location /svc/ {{ default_type application/health+json; return 200 '{HEALTH_BODY}'; }}
  }}
}}
"""
        with open(os.path.join(d, "nginx.conf"), "w") as f:
            f.write(conf)
        self.proc = subprocess.Popen(pinned(TARGET_CPU, ["nginx", "-p", d, "-c", "nginx.conf"]),
                                     stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT,
                                     preexec_fn=raise_nofile)
        wait_port(self.port)

    def url(self, i):
        return f"http://127.0.0.1:{self.port}/svc/{i}/health"

    def requests(self):
        _, body, _ = http_get(self.port, "/nginx_status")
        return int(body.split(b"\n")[2].split()[2])

    def stop(self):
        stop_process(self.proc)


def raise_nofile():
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = min(hard, 65536) if hard != resource.RLIM_INFINITY else 65536
    resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, want), hard))


def hung_server_main(port_file):
    """Accepts every connection and never answers; closes its end when the peer does."""
    raise_nofile()
    ls = socket.socket()
    ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    ls.bind(("127.0.0.1", 0))
    ls.listen(4096)
    ls.setblocking(False)
    sel = selectors.DefaultSelector()
    sel.register(ls, selectors.EVENT_READ, None)
    with open(port_file + ".tmp", "w") as f:
        f.write(str(ls.getsockname()[1]))
    os.rename(port_file + ".tmp", port_file)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    while True:
        for key, _ in sel.select():
            if key.data is None:
                while True:
                    try:
                        c, _ = ls.accept()
                    except (BlockingIOError, InterruptedError):
                        break
                    except OSError:  # out of descriptors: leave it in the backlog
                        break
                    c.setblocking(False)
                    sel.register(c, selectors.EVENT_READ, c)
            else:
                c = key.data
                try:
                    data = c.recv(65536)  # the request: read and ignored
                except OSError:
                    data = b""
                if not data:
                    sel.unregister(c)
                    c.close()


class HungServer:
    def __init__(self, tmp):
        port_file = os.path.join(tmp, "hung.port")
        # A file left by the previous run's server would name its (dead) port: every
        # "hung" check would then be refused at once instead of hanging.
        if os.path.exists(port_file):
            os.remove(port_file)
        self.proc = subprocess.Popen(
            pinned(TARGET_CPU, [sys.executable, os.path.abspath(__file__), "--hung-server", port_file]))
        end = time.monotonic() + 10
        while not os.path.exists(port_file):
            if time.monotonic() > end or self.proc.poll() is not None:
                raise RuntimeError("the hung server did not start")
            time.sleep(0.02)
        with open(port_file) as f:
            self.port = int(f.read())

    def url(self, i):
        return f"http://127.0.0.1:{self.port}/svc/{i}/health"

    def stop(self):
        stop_process(self.proc)


# ---------------------------------------------------------------- vigie

def fmt_ms(seconds_):
    ms = seconds_ * 1000
    return f"{ms:.0f}ms" if abs(ms - round(ms)) < 1e-9 else f"{ms:.3f}ms"


def write_config(path, port, groups, max_in_flight=4096, modules=None):
    """groups: list of (prefix, count, interval_s, timeout_s, url_fn)."""
    lines = [f'listen: "127.0.0.1:{port}"', f"max_in_flight: {max_in_flight}",
             "defaults: {failure_threshold: 3, success_threshold: 1}",
             "groups:"]
    lines += [f"  - {{name: g{k}}}" for k in range(20)]
    if modules:
        lines.append("modules:")
        lines += ["  " + m for m in modules]
    lines.append("services:")
    k = 0
    for prefix, count, interval, timeout, url in groups:
        iv, to = fmt_ms(interval), fmt_ms(min(timeout, interval))
        for i in range(count):
            lines.append(f"  - {{name: {prefix}-{i}, group: g{k % 20}, checks: [{{name: health, "
                         f"interval: {iv}, timeout: {to}, http: {{url: \"{url(i)}\"}}}}]}}")
            k += 1
    with open(path, "w") as f:
        f.write("\n".join(lines) + "\n")


class Vigie:
    def __init__(self, binary, config, log):
        self.port = None
        with open(config) as f:
            self.port = int(re.search(r'listen: "127.0.0.1:(\d+)"', f.read()).group(1))
        self.log = open(log, "w")
        t0 = time.monotonic()
        self.proc = subprocess.Popen(pinned(PROBER_CPU, [binary, "--config", config,
                                                         "--log-level", "warn"]),
                                     stdout=self.log, stderr=subprocess.STDOUT,
                                     preexec_fn=raise_nofile)
        self.pid = self.proc.pid
        end = t0 + 120
        while True:
            if self.proc.poll() is not None:
                raise RuntimeError(f"vigie exited ({self.proc.returncode}); see {log}")
            try:
                if http_get(self.port, "/readyz", timeout=5)[0] == 200:
                    break
            except OSError:
                pass
            if time.monotonic() > end:
                raise RuntimeError("vigie not ready after 120 s")
            time.sleep(0.05)
        self.startup_s = time.monotonic() - t0

    def metrics(self):
        status, body, dt = http_get(self.port, "/metrics")
        if status != 200:
            raise RuntimeError(f"/metrics answered {status}")
        return body, dt

    def stop(self):
        stop_process(self.proc)
        self.log.close()


def sample_while(pid, seconds_, every=0.5):
    """Peak open descriptors and RSS over `seconds_`."""
    peak_fds = peak_rss = 0
    end = time.monotonic() + seconds_
    while True:
        peak_fds = max(peak_fds, open_fds(pid))
        peak_rss = max(peak_rss, status_kib(pid, "VmRSS"))
        left = end - time.monotonic()
        if left <= 0:
            return peak_fds, peak_rss
        time.sleep(min(every, left))


FAMILIES = ("vigie_scheduler_lag_seconds_bucket", "vigie_probes_total",
            "vigie_probes_skipped_total", "vigie_check_results_total")


def try_metrics(v, errors):
    try:
        body, dt = v.metrics()
        return parse_metrics(body, FAMILIES), dt, len(body)
    except (OSError, http.client.HTTPException, RuntimeError) as e:
        errors.append(f"/metrics failed: {type(e).__name__} {e}"[:200])
        return None, None, None


def measure_window(v, window_s, nginx=None, count_prefix=None):
    """One measured window on a running vigie: the /metrics scrape that opens it is inside
    it (a Prometheus scraping once per window); its rendering CPU is reported apart. Probes are
    counted by vigie (vigie_probes_total) and, for healthy targets, by nginx too."""
    errors = []
    # The window runs from one scrape request to the next (vigie takes its snapshot when
    # the request arrives); the CPU of vigie's /metrics thread is counted apart.
    req0 = nginx.requests() if nginx else None
    c0, t0, r0 = cpu_seconds(v.pid), time.monotonic(), thread_cpu(v.pid, "vigie-metrics")
    d0 = run_delay(v.pid)
    m0, scrape0, _ = try_metrics(v, errors)
    peak_fds, peak_rss = sample_while(v.pid, max(0.0, window_s - (time.monotonic() - t0)))
    req1 = nginx.requests() if nginx else None
    c1, t1, r1 = cpu_seconds(v.pid), time.monotonic(), thread_cpu(v.pid, "vigie-metrics")
    d1 = run_delay(v.pid)
    m1, scrape1, size1 = try_metrics(v, errors)
    seen = req1 - req0 - 1 if nginx else None
    wall, render = t1 - t0, r1 - r0
    cpu = c1 - c0 - render
    r = {"wall_s": wall, "cpu_s": cpu, "core_share": cpu / wall, "errors": errors,
         "metrics_render_cpu_s": render, "loop_wait_share": (d1 - d0) / wall,
         "rss_mib": status_kib(v.pid, "VmRSS") / 1024,
         "hwm_mib": status_kib(v.pid, "VmHWM") / 1024,
         "peak_rss_mib": peak_rss / 1024, "peak_fds": peak_fds,
         "metrics_bytes": size1, "metrics_s": [scrape0, scrape1], "nginx_requests": seen}
    if m0 is not None and m1 is not None:
        def delta(name, where=None):
            return metric_sum(m1, name, where) - metric_sum(m0, name, where)
        r.update(probes=delta("vigie_probes_total"),
                 fails=delta("vigie_probes_total", lambda l: 'result="fail"' in l),
                 skipped=delta("vigie_probes_skipped_total"),
                 lag_p50_ms=ms(quantile(0.5, lag_buckets(m0), lag_buckets(m1))),
                 lag_p99_ms=ms(quantile(0.99, lag_buckets(m0), lag_buckets(m1))))
        if count_prefix:
            for res in ("ok", "fail"):
                r[f"{count_prefix}_{res}"] = delta(
                    "vigie_check_results_total",
                    lambda l, res=res: f'service="{count_prefix}-' in l and f'result="{res}"' in l)
    elif seen is not None:
        r["probes"] = seen  # vigie could not be read: what nginx served
    if r.get("probes"):
        r["probes_per_s"] = r["probes"] / wall
        r["cpu_us_per_probe"] = cpu / r["probes"] * 1e6
    return r


def ms(seconds_):
    return None if seconds_ is None else seconds_ * 1000


def timed_gets(port, path, count):
    """Median and worst time of `count` GETs, as curl measures them (request sent to
    last byte read; a C client, so the figure is the server's, not this script's)."""
    times, size = [], 0
    for _ in range(count):
        out = subprocess.run(["curl", "-sS", "-o", "/dev/null", "--max-time", "60", "-w",
                              "%{http_code} %{time_total} %{size_download}",
                              f"http://127.0.0.1:{port}{path}"],
                             capture_output=True, text=True)
        code, total, size = out.stdout.split()
        if code != "200" or out.returncode != 0:  # 18: cut before Content-Length
            raise RuntimeError(f"GET {path} answered {code} after {float(total):.1f} s, "
                               f"{int(size):,} bytes read (curl exit {out.returncode}: "
                               f"{out.stderr.strip()})")
        times.append(float(total))
        size = int(size)
    return statistics.median(times), max(times), size


# ---------------------------------------------------------------- scenarios

class Bench:
    def __init__(self, args, tmp):
        self.args = args
        self.tmp = tmp
        self.nginx = Nginx(tmp)
        self.rate = args.rate

    def close(self):
        self.nginx.stop()

    def start_vigie(self, name, groups, **kw):
        port = free_port()
        cfg = os.path.join(self.tmp, f"{name}.yaml")
        write_config(cfg, port, groups, **kw)
        return Vigie(self.args.vigie, cfg, os.path.join(self.tmp, f"{name}.log"))

    def idle_rss(self):
        v = self.start_vigie("idle", [("idle", 1, 30.0, 5.0, self.nginx.url)])
        try:
            time.sleep(1.0)
            return status_kib(v.pid, "VmRSS") / 1024
        finally:
            v.stop()

    def scheduled(self, n, idle_rss_mib, read_side=False, scrape_count=0):
        interval = round(n / self.rate, 3)
        v = self.start_vigie(f"sched{n}", [("svc", n, interval, 5.0, self.nginx.url)])
        try:
            # Measured in the steady state: every check has run once (its first result,
            # unknown -> up, is a start-up transient), plus the warm-up.
            time.sleep(self.args.warmup + interval)
            try_metrics(v, [])  # a first scrape, outside the window
            time.sleep(1.0)
            r = measure_window(v, self.args.window, nginx=self.nginx)
            r.update(checks=n, interval_s=interval, startup_s=v.startup_s,
                     rss_per_check_kib=(r["peak_rss_mib"] - idle_rss_mib) * 1024 / n)
            if read_side:
                r["services_api_s"], _, r["services_api_bytes"] = timed_gets(
                    v.port, "/api/v1/services", self.args.read_count)
                r["dashboard_s"], _, r["dashboard_bytes"] = timed_gets(
                    v.port, "/", self.args.read_count)
            if scrape_count:
                try:
                    r["metrics_scrape_s"], r["metrics_scrape_max_s"], r["metrics_bytes"] = \
                        timed_gets(v.port, "/metrics", scrape_count)
                except (OSError, http.client.HTTPException, RuntimeError) as e:
                    r["errors"].append(f"/metrics timing failed: {type(e).__name__} {e}"[:200])
            return r
        finally:
            v.stop()

    def run_wrk(self, url, cpu, connections, headers=(), extra=()):
        """wrk for one window: requests, wall seconds, wrk's own CPU (wait4 rusage)."""
        argv = ["wrk", "-t1", f"-c{connections}", f"-d{int(self.args.window)}s", *extra]
        for h in headers:
            argv += ["-H", h]
        p = subprocess.Popen(pinned(cpu, argv + [url]), stdout=subprocess.PIPE,
                             stderr=subprocess.STDOUT)
        out = p.stdout.read().decode()
        _, status, ru = os.wait4(p.pid, 0)
        p.returncode = status
        m = re.search(r"(\d+) requests in ([\d.]+)(m?s)", out)
        if not m:
            raise RuntimeError("cannot read wrk's output:\n" + out)
        bad = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
        errors = re.search(r"Socket errors: (.*)", out)
        return {"requests": int(m.group(1)),
                "wall_s": float(m.group(2)) * (1 if m.group(3) == "s" else 1e-3),
                "cpu_s": ru.ru_utime + ru.ru_stime, "non_2xx": int(bad.group(1)) if bad else 0,
                "errors": errors.group(1) if errors else ""}

    def limit(self):
        """wrk, one new connection per request, on the same nginx target, on core 1."""
        w = self.run_wrk(self.nginx.url(0), PROBER_CPU, 16, ["Connection: close"])
        return {"requests": w["requests"], "requests_per_s": w["requests"] / w["wall_s"],
                "cpu_s": w["cpu_s"], "cpu_us_per_request": w["cpu_s"] / w["requests"] * 1e6,
                "errors": w["errors"]}

    def probe_endpoint(self):
        """The same wrk load (8 keep-alive connections, on core 0 beside nginx) on vigie's
        /probe and on blackbox_exporter's, each prober alone on core 1."""
        target = urllib.parse.quote(self.nginx.url(0), safe="")
        out = {}
        v = self.start_vigie("probe", [("svc", 1, 30.0, 5.0, self.nginx.url)],
                             modules=["http_2xx: {prober: http, timeout: 5s, "
                                      "http: {valid_status_codes: [200]}}"])
        try:
            out["vigie"] = self.measure_prober(v.pid, v.port, target)
            out["vigie"]["rss_mib"] = status_kib(v.pid, "VmHWM") / 1024
        finally:
            v.stop()
        if shutil.which("prometheus-blackbox-exporter"):
            cfg = os.path.join(self.tmp, "blackbox.yml")
            with open(cfg, "w") as f:
                f.write("modules:\n  http_2xx:\n    prober: http\n    timeout: 5s\n"
                        "    http:\n      valid_status_codes: [200]\n")
            port = free_port()
            log = open(os.path.join(self.tmp, "blackbox.log"), "w")
            bb = subprocess.Popen(pinned(PROBER_CPU, [
                "prometheus-blackbox-exporter", f"--config.file={cfg}",
                f"--web.listen-address=127.0.0.1:{port}", "--log.level=warn"]),
                stdout=log, stderr=subprocess.STDOUT)
            try:
                wait_port(port)
                out["blackbox"] = self.measure_prober(bb.pid, port, target)
                out["blackbox"]["rss_mib"] = status_kib(bb.pid, "VmHWM") / 1024
            finally:
                stop_process(bb)
                log.close()
        if out.get("vigie") and out.get("blackbox"):
            out["ratio"] = out["blackbox"]["cpu_us_per_probe"] / out["vigie"]["cpu_us_per_probe"]
        return out

    def measure_prober(self, pid, port, target):
        path = f"/probe?target={target}&module=http_2xx"
        status, body, _ = http_get(port, path)
        if status != 200 or b"\nprobe_success 1" not in b"\n" + body:
            raise RuntimeError(f"{path} on port {port} answered {status}: {body[:300]!r}")
        req0 = self.nginx.requests()
        c0 = cpu_seconds(pid)
        w = self.run_wrk(f"http://127.0.0.1:{port}{path}", TARGET_CPU, 8)
        cpu = cpu_seconds(pid) - c0
        seen = self.nginx.requests() - req0 - 1
        return {"probes": w["requests"], "probes_per_s": w["requests"] / w["wall_s"],
                "cpu_s": cpu, "cpu_us_per_probe": cpu / w["requests"] * 1e6 if w["requests"] else None,
                "core_share": cpu / w["wall_s"], "non_2xx": w["non_2xx"], "errors": w["errors"],
                "nginx_requests": seen}

    def serve(self, checks=20, interval=0.5, connections=2000):
        """vigie's own HTTP server under a flood: wrk with `connections` keep-alive
        connections alternating /metrics and /api/v1/checks (on core 0, as remote clients
        would be elsewhere) while vigie, alone on core 1, probes `checks` nginx URLs every
        `interval`: requests/s served, errors, and whether probing kept its schedule."""
        v = self.start_vigie("serve", [("svc", checks, interval, interval, self.nginx.url)])
        script = os.path.join(self.tmp, "serve.lua")
        with open(script, "w") as f:
            f.write('local paths = {"/metrics", "/api/v1/checks"}\nlocal i = 0\n'
                    'request = function()\n  i = i + 1\n'
                    '  return wrk.format("GET", paths[i % 2 + 1])\nend\n')
        try:
            time.sleep(self.args.warmup)
            errors = []
            m0, _, _ = try_metrics(v, errors)
            c0, d0 = cpu_seconds(v.pid), run_delay(v.pid)
            w = self.run_wrk(f"http://127.0.0.1:{v.port}/", TARGET_CPU, connections,
                             extra=["--timeout", "3s", "-s", script])
            c1, d1 = cpu_seconds(v.pid), run_delay(v.pid)
            m1, _, _ = try_metrics(v, errors)
            r = {"checks": checks, "interval_s": interval, "connections": connections,
                 "requests": w["requests"], "requests_per_s": w["requests"] / w["wall_s"],
                 "non_2xx": w["non_2xx"], "socket_errors": w["errors"],
                 "cpu_us_per_request": (c1 - c0) / max(1, w["requests"]) * 1e6,
                 "core_share": (c1 - c0) / w["wall_s"], "loop_wait_share": (d1 - d0) / w["wall_s"],
                 "errors": errors, "wall_s": w["wall_s"]}
            if m0 is not None and m1 is not None:
                # The window between the two scrapes is wrk's plus the scrapes themselves.
                probes = metric_sum(m1, "vigie_probes_total") - metric_sum(m0, "vigie_probes_total")
                r["probes"] = probes
                r["schedule_share"] = probes / (checks / interval * w["wall_s"])
                r["probe_fails"] = (metric_sum(m1, "vigie_probes_total", lambda l: 'result="fail"' in l)
                                    - metric_sum(m0, "vigie_probes_total", lambda l: 'result="fail"' in l))
                r["lag_p99_ms"] = ms(quantile(0.99, lag_buckets(m0), lag_buckets(m1)))
            return r
        finally:
            v.stop()

    def hung(self, n_healthy, n_hung):
        interval = round(n_healthy / self.rate, 3)
        srv = HungServer(self.tmp)
        try:
            v = self.start_vigie("hung", [("ok", n_healthy, interval, 5.0, self.nginx.url),
                                          ("hung", n_hung, 30.0, 5.0, srv.url)])
            try:
                time.sleep(max(self.args.warmup, 6.0))  # the 5 s timeouts reach steady state
                try_metrics(v, [])
                time.sleep(1.0)
                r = measure_window(v, self.args.window, count_prefix="ok")
                hr = parse_metrics(v.metrics()[0], ("vigie_check_results_total",))
                r["hung_fail_total"] = metric_sum(
                    hr, "vigie_check_results_total",
                    lambda l: 'service="hung-' in l and 'result="fail"' in l)
                r.update(healthy=n_healthy, hung=n_hung, interval_s=interval, max_in_flight=4096)
                return r
            finally:
                v.stop()
        finally:
            srv.stop()


# ---------------------------------------------------------------- report

def median_of(runs, path):
    vals = []
    for r in runs:
        x = r
        for k in path:
            x = None if x is None else x.get(k)
        if x is not None:
            vals.append(x)
    return statistics.median(vals) if vals else None


def describe_machine():
    model = ""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    model = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    mem_gib = os.sysconf("SC_PHYS_PAGES") * PAGE / 2**30

    def version(argv, pattern=r"([\d.]+\S*)"):
        try:
            out = subprocess.run(argv, capture_output=True, text=True, timeout=10)
            m = re.search(pattern, out.stdout + out.stderr)
            return m.group(1) if m else "?"
        except (OSError, subprocess.TimeoutExpired):
            return "absent"
    return {
        "cpu": model, "cores": os.cpu_count(), "memory_gib": round(mem_gib, 1),
        "kernel": platform.release(), "os": platform.freedesktop_os_release().get("PRETTY_NAME", "")
        if hasattr(platform, "freedesktop_os_release") else "",
        "nginx": version(["nginx", "-v"], r"nginx/(\S+)"),
        "wrk": version(["wrk", "-v"], r"wrk (\S+)"),
        "curl": version(["curl", "--version"], r"libcurl/(\S+)"),
        "blackbox_exporter": version(["prometheus-blackbox-exporter", "--version"],
                                     r"version (\S+)"),
    }


def fmt(x, unit="", digits=0):
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return "n/a"
    if isinstance(x, float) and digits == 0 and abs(x) < 10 and x != 0:
        digits = 1 if abs(x) >= 1 else 2
    return f"{x:,.{digits}f}{unit}"


def verdict(ok):
    return "" if ok is None else ("met" if ok else "NOT met")


def build_table(runs, mode):
    """Rows of (scenario, metric, value, goal, verdict) from the medians of the runs."""
    rows = []
    med = lambda *p: median_of(runs, p)
    limit_us = med("limit", "cpu_us_per_request")

    def ratio_med(key):
        vals = []
        for r in runs:
            a = (r.get(key) or {}).get("cpu_us_per_probe")
            b = (r.get("limit") or {}).get("cpu_us_per_request")
            if a and b:
                vals.append(a / b)
        return statistics.median(vals) if vals else None

    for n in runs[0]["sizes"]:
        key = f"sched{n}"
        if key not in runs[0]:
            continue
        sc = f"scheduled {n:,} checks every {fmt(med(key, 'interval_s'), ' s', 3)}"
        seen = med(key, "nginx_requests")
        rows.append((sc, "probes/s achieved (nginx saw)", f"{fmt(med(key, 'probes_per_s'))} "
                     f"({fmt(None if seen is None else seen / med(key, 'wall_s'))})", "", ""))
        fails = med(key, "fails")
        rows.append((sc, "failed probes", fmt(fails), "0", verdict(None if fails is None else fails == 0)))
        ratio = ratio_med(key)
        rows.append((sc, "CPU-µs per probe (x limit)",
                     f"{fmt(med(key, 'cpu_us_per_probe'))} ({fmt(ratio, 'x', 2)})",
                     "≤ 1.5x limit", verdict(None if ratio is None else ratio <= 1.5)))
        rows.append((sc, "share of one core (loop waiting for a CPU)",
                     f"{fmt(100 * med(key, 'core_share'), '%')} "
                     f"({fmt(100 * med(key, 'loop_wait_share'), '%')})", "", ""))
        p99 = med(key, "lag_p99_ms")
        rows.append((sc, "scheduler lag p50 / p99",
                     f"{fmt(med(key, 'lag_p50_ms'), ' ms', 2)} / {fmt(p99, ' ms', 1)}",
                     "p99 < 100 ms" if n >= 50000 else "",
                     verdict(p99 < 100) if n >= 50000 and p99 is not None else ""))
        rss, hwm = med(key, "peak_rss_mib"), med(key, "hwm_mib")
        rows.append((sc, "RSS while probing / per check / VmHWM",
                     f"{fmt(rss, ' MiB', 1)} / {fmt(med(key, 'rss_per_check_kib'), ' KiB', 2)} / "
                     f"{fmt(hwm, ' MiB', 1)}",
                     "< 250 MB" if n >= 50000 else "",
                     verdict(rss * 1.048576 < 250) if n >= 50000 and rss else ""))
        rows.append((sc, "start-up to ready", fmt(med(key, "startup_s"), " s", 2), "", ""))
        errors = sorted({e for r in runs for e in (r.get(key) or {}).get("errors", [])})
        for e in errors:
            rows.append((sc, "error", e, "", "NOT met"))
        if med(key, "metrics_scrape_s") is not None or (n >= 10000 and errors):
            lim = 1.0 if n >= 50000 else None
            if med(key, "metrics_scrape_s") is None:
                rows.append((sc, "/metrics scrape", "failed", "< 1 s" if lim else "",
                             "NOT met" if lim else ""))
                continue
            rows.append((sc, "/metrics scrape (size, rendering CPU)",
                         f"{fmt(med(key, 'metrics_scrape_s') * 1000, ' ms')} "
                         f"({fmt(med(key, 'metrics_bytes') / 2**20, ' MiB', 1)}, "
                         f"{fmt(med(key, 'metrics_render_cpu_s') * 1000, ' ms')})",
                         "< 1 s" if lim else "",
                         verdict(med(key, "metrics_scrape_s") < lim) if lim else ""))
        if med(key, "dashboard_s") is not None:
            rows.append((sc, "/api/v1/services (size)",
                         f"{fmt(med(key, 'services_api_s') * 1000, ' ms', 1)} "
                         f"({fmt(med(key, 'services_api_bytes') / 1024, ' KiB')})", "", ""))
            rows.append((sc, "dashboard / (size)",
                         f"{fmt(med(key, 'dashboard_s') * 1000, ' ms', 1)} "
                         f"({fmt(med(key, 'dashboard_bytes') / 1024, ' KiB')})",
                         "< 100 ms", verdict(med(key, "dashboard_s") < 0.1)))
    if "limit" in runs[0] and runs[0]["limit"]:
        sc = "limit: wrk -c16, Connection: close"
        rows.append((sc, "requests/s", fmt(med("limit", "requests_per_s")), "", ""))
        rows.append((sc, "CPU-µs per request", fmt(limit_us), "", ""))
    if "hung" in runs[0]:
        h = runs[0]["hung"]
        sc = f"hung: {h['hung']:,} hung (30 s, timeout 5 s) + {h['healthy']:,} healthy"
        base_key = f"sched{h['healthy']}"
        deltas = [r["hung"]["lag_p99_ms"] - r[base_key]["lag_p99_ms"] for r in runs
                  if r.get("hung") and r.get(base_key) and r["hung"]["lag_p99_ms"] is not None
                  and r[base_key]["lag_p99_ms"] is not None]
        delta = statistics.median(deltas) if deltas else None
        rows.append((sc, "healthy results ok / fail",
                     f"{fmt(med('hung', 'ok_ok'))} / {fmt(med('hung', 'ok_fail'))}", "fail 0",
                     verdict(med("hung", "ok_fail") == 0)))
        rows.append((sc, "lag p50 / p99 (change vs healthy alone)",
                     f"{fmt(med('hung', 'lag_p50_ms'), ' ms', 2)} / {fmt(med('hung', 'lag_p99_ms'), ' ms', 1)}"
                     f" ({'+' if (delta or 0) >= 0 else ''}{fmt(delta, ' ms', 1)})",
                     "change < 50 ms", verdict(None if delta is None else delta < 50)))
        fds = med("hung", "peak_fds")
        rows.append((sc, "open descriptors peak (max_in_flight)",
                     f"{fmt(fds)} ({h['max_in_flight']:,})", "≤ max_in_flight",
                     verdict(fds <= h["max_in_flight"] + 64)))
        rows.append((sc, "RSS peak (VmHWM)", fmt(med("hung", "hwm_mib"), " MiB", 1), "", ""))
        rows.append((sc, "loop waiting for a CPU (healthy alone)",
                     f"{fmt(100 * med('hung', 'loop_wait_share'), '%')} "
                     f"({fmt(100 * med(base_key, 'loop_wait_share'), '%')})", "", ""))
        rows.append((sc, "CPU-µs per probe (all)", fmt(med("hung", "cpu_us_per_probe")), "", ""))
    if runs[0].get("serve"):
        sv = runs[0]["serve"]
        sc = (f"vigie's server: wrk -c{sv['connections']:,} on /metrics + /api/v1/checks while "
              f"probing {sv['checks']} checks every {fmt(sv['interval_s'], ' s', 1)}")
        rps = med("serve", "requests_per_s")
        rows.append((sc, "requests/s (non-2xx, socket errors)",
                     f"{fmt(rps)} ({fmt(med('serve', 'non_2xx'))}, "
                     f"{sorted({r['serve']['socket_errors'] for r in runs if r.get('serve')})[-1] or 'none'})",
                     "≥ 10,000", verdict(None if rps is None else rps >= 10000)))
        rows.append((sc, "vigie CPU-µs per request, share of one core (loop waiting)",
                     f"{fmt(med('serve', 'cpu_us_per_request'))}, {fmt(100 * med('serve', 'core_share'), '%')} "
                     f"({fmt(100 * med('serve', 'loop_wait_share'), '%')})", "", ""))
        share = med("serve", "schedule_share")
        rows.append((sc, "probes done / scheduled (failed), lag p99",
                     f"{fmt(None if share is None else 100 * share, '%')} ({fmt(med('serve', 'probe_fails'))}), "
                     f"{fmt(med('serve', 'lag_p99_ms'), ' ms', 1)}",
                     "≥ 95%, 0 failed", verdict(None if share is None else share >= 0.95
                                                and med("serve", "probe_fails") == 0)))
    if runs[0].get("probe"):
        sc = "/probe, wrk -c8 keep-alive, prober alone on one core"
        for who in ("vigie", "blackbox"):
            if not runs[0]["probe"].get(who):
                continue
            name = "vigie" if who == "vigie" else "blackbox_exporter"
            rows.append((sc, f"{name}: probes/s (non-2xx)",
                         f"{fmt(med('probe', who, 'probes_per_s'))} ({fmt(med('probe', who, 'non_2xx'))})",
                         "", ""))
            rows.append((sc, f"{name}: CPU-µs per probe, share of the core",
                         f"{fmt(med('probe', who, 'cpu_us_per_probe'))}, "
                         f"{fmt(100 * med('probe', who, 'core_share'), '%')}", "", ""))
        ratio = med("probe", "ratio")
        if ratio is not None:
            rows.append((sc, "blackbox_exporter / vigie CPU per probe", fmt(ratio, "x", 1),
                         "≥ 5x", verdict(ratio >= 5)))
    return rows


def render_table(rows, markdown=False):
    head = ("scenario", "metric", "median", "goal", "")
    if markdown:
        out = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
        last = None
        for r in rows:
            sc = r[0] if r[0] != last else ""
            last = r[0]
            out.append("| " + " | ".join((sc,) + r[1:]) + " |")
        return "\n".join(out)
    widths = [max(len(str(r[i])) for r in rows + [head]) for i in range(len(head))]
    widths[0] = min(widths[0], 60)
    out = ["  ".join(h.ljust(w) for h, w in zip(head, widths)).rstrip()]
    out.append("  ".join("-" * w for w in widths))
    last = None
    for r in rows:
        sc = r[0] if r[0] != last else ""
        last = r[0]
        out.append("  ".join(str(c).ljust(w) for c, w in zip((sc,) + r[1:], widths)).rstrip())
    return "\n".join(out)


def loadavg():
    with open("/proc/loadavg") as f:
        return " ".join(f.read().split()[:3])


def write_results(path, text):
    old = ""
    if os.path.exists(path):
        with open(path) as f:
            old = f.read()
    block = f"{RESULTS_BEGIN}\n{text}\n{RESULTS_END}"
    if RESULTS_BEGIN in old and RESULTS_END in old:
        head, rest = old.split(RESULTS_BEGIN, 1)
        tail = rest.split(RESULTS_END, 1)[1]
        new = head + block + tail
    else:
        new = "# vigie benchmark results\n\n" + block + "\n" + old
    with open(path, "w") as f:
        f.write(new)


# ---------------------------------------------------------------- main

def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--vigie", required=True, help="the vigie binary to measure")
    ap.add_argument("--mode", choices=("quick", "full", "smoke"), default="quick")
    ap.add_argument("--runs", type=int, help="repetitions (medians are reported)")
    ap.add_argument("--window", type=float, help="seconds measured per scenario")
    ap.add_argument("--only", default="", help="comma list: sched,limit,hung,probe,serve")
    ap.add_argument("--sizes", default="", help="comma list of check counts (default 1000,10000,50000)")
    ap.add_argument("--rate", type=float, default=1500.0, help="probes/s of the scheduled runs")
    ap.add_argument("--json", help="write every run's raw figures here")
    ap.add_argument("--results", help="write the table into this markdown file (between markers)")
    args = ap.parse_args()
    presets = {"smoke": (1, 2.0, 1.0, 3, [200, 1000], 200, 1000),
               "quick": (1, 10.0, 3.0, 5, [1000, 10000, 50000], 1000, 10000),
               "full": (3, 30.0, 5.0, 10, [1000, 10000, 50000], 1000, 10000)}
    runs_n, window, warmup, read_count, sizes, healthy, hung_n = presets[args.mode]
    args.runs = args.runs or runs_n
    args.window = args.window or window
    args.warmup = warmup
    args.read_count = read_count
    if args.sizes:
        sizes = [int(s) for s in args.sizes.split(",")]
    only = set(filter(None, args.only.split(","))) or {"sched", "limit", "hung", "probe", "serve"}
    if args.mode == "smoke":
        args.rate = min(args.rate, 500.0)

    # The bench itself (parsing scrapes of up to 230 MiB) stays off the measured core,
    # whose caches it would otherwise share with the prober.
    if hasattr(os, "sched_setaffinity") and len(os.sched_getaffinity(0)) > 1:
        os.sched_setaffinity(0, {int(TARGET_CPU)})
    machine = describe_machine()
    started = datetime.datetime.now(datetime.timezone.utc)
    load_before = loadavg()
    print(f"vigie bench, {args.mode} mode, {args.runs} run(s) of {args.window:.0f} s windows; "
          f"{machine['cpu']}, {machine['cores']} cores; load {load_before}", flush=True)
    tmp = tempfile.mkdtemp(prefix="vigie-bench-")
    runs = []
    bench = None
    try:
        bench = Bench(args, tmp)
        idle = bench.idle_rss()
        for k in range(args.runs):
            r = {"sizes": sizes}
            step = lambda what: print(f"  run {k + 1}/{args.runs}: {what}", flush=True)
            if "sched" in only or "hung" in only:
                for n in sizes:
                    if "sched" not in only and n != healthy:
                        continue
                    step(f"scheduled probing, {n:,} checks")
                    r[f"sched{n}"] = bench.scheduled(
                        n, idle, read_side=(n == healthy),
                        scrape_count=args.read_count if n >= 10000 else 0)
            if "limit" in only:
                step("the limit: wrk, Connection: close")
                r["limit"] = bench.limit()
            if "hung" in only:
                step(f"hung targets: {hung_n:,} hung + {healthy:,} healthy")
                r["hung"] = bench.hung(healthy, hung_n)
            if "probe" in only:
                step("/probe: vigie and blackbox_exporter under the same wrk load")
                r["probe"] = bench.probe_endpoint()
            if "serve" in only:
                step("vigie's own server under a wrk flood while probing")
                r["serve"] = bench.serve()
            runs.append(r)
    finally:
        if bench:
            bench.close()
        shutil.rmtree(tmp, ignore_errors=True)

    rows = build_table(runs, args.mode)
    load_after = loadavg()
    when = started.strftime("%Y-%m-%d %H:%M UTC")
    header = (f"{when}; {machine['cpu']}, {machine['cores']} cores, {machine['memory_gib']} GiB; "
              f"{machine['os']}, Linux {machine['kernel']}; nginx {machine['nginx']}, "
              f"libcurl {machine['curl']}, wrk {machine['wrk']}, blackbox_exporter "
              f"{machine['blackbox_exporter']}; {args.mode} mode, median of {args.runs} run(s), "
              f"{args.window:.0f} s windows; load average {load_before} before, {load_after} after.")
    print()
    print(header)
    print(render_table(rows))
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"machine": machine, "started": when, "mode": args.mode, "runs": runs,
                       "load": [load_before, load_after]}, f, indent=1, default=str)
    if args.results:
        write_results(args.results, header + "\n\n" + render_table(rows, markdown=True))
        print(f"\nwritten into {args.results}")


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "--hung-server":
        hung_server_main(sys.argv[2])
    else:
        main()
