#!/usr/bin/env python3
"""Packaging tests: what packaging/ promises (README "Deploy").

KustomizeTest  renders every overlay with `kubectl kustomize` and checks the objects:
               probes, securityContext, resources, Secret reference, PDB, the shard
               wiring, the ServiceMonitor/PrometheusRule, the ConfigMap (accepted by
               `vigie check-config` with an empty environment), and that a config
               change renames the ConfigMap in the pod template (pods roll).
ShardWiringTest runs the built vigie once per StatefulSet pod with the environment the
               rendered StatefulSet gives it: replica K says it is shard K of N.
RuntimeTest    the example config from the environment only: fast start, JSON logs on
               stdout, the self check up, graceful stop on SIGTERM.
SystemdTest    `systemd-analyze verify` and `security --offline` on the unit.
ContainerTest  the Dockerfile's promises, read from the file (no container engine
               needed; CI does not depend on one).

Environment: VIGIE_BINARY (the built vigie), VIGIE_SOURCE_DIR (the repository).
Run one class: python3 packaging_test.py KustomizeTest
"""

import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import unittest
import urllib.request

import yaml

SRC = os.environ.get("VIGIE_SOURCE_DIR",
                     os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "..")))
VIGIE = os.environ.get("VIGIE_BINARY", os.path.join(SRC, "build", "vigie"))
K8S = os.path.join(SRC, "packaging", "kubernetes")
OVERLAYS = ["single", "sharded", "prometheus-operator"]
PORT = 9877


def render(path):
    out = subprocess.run(["kubectl", "kustomize", path], check=True, capture_output=True,
                         text=True, timeout=60).stdout
    return [d for d in yaml.safe_load_all(out) if d]


def objects(docs, kind):
    return [d for d in docs if d["kind"] == kind]


def one(docs, kind, name=None):
    found = [d for d in objects(docs, kind) if name is None or d["metadata"]["name"] == name]
    assert len(found) == 1, f"expected one {kind} {name or ''}, found {len(found)}"
    return found[0]


def workload(docs):
    found = objects(docs, "Deployment") + objects(docs, "StatefulSet")
    assert len(found) == 1, f"expected one workload, found {[d['kind'] for d in found]}"
    return found[0]


def container(w):
    cs = w["spec"]["template"]["spec"]["containers"]
    return next(c for c in cs if c["name"] == "vigie")


def env_of(c):
    return {e["name"]: e for e in c.get("env", [])}


def selects(selector, labels):
    return all(labels.get(k) == v for k, v in selector.items())


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def get(url, timeout=2):
    with urllib.request.urlopen(url, timeout=timeout) as r:
        return r.status, r.read().decode()


def wait_ready(port, proc, deadline_s=5.0):
    """Seconds until /readyz answers 200 (fails the test past the deadline)."""
    start = time.monotonic()
    while time.monotonic() - start < deadline_s:
        if proc.poll() is not None:
            raise AssertionError(f"vigie exited with {proc.returncode}: {proc.stderr.read()}")
        try:
            if get(f"http://127.0.0.1:{port}/readyz", timeout=0.5)[0] == 200:
                return time.monotonic() - start
        except OSError:
            pass
        time.sleep(0.02)
    raise AssertionError(f"vigie not ready on port {port} within {deadline_s} s")


def cleanup(proc):
    """Kills a vigie still running (a failed test) and closes its pipes."""
    if proc.poll() is None:
        proc.kill()
        proc.wait()
    for stream in (proc.stdout, proc.stderr):
        if stream:
            stream.close()


def stop(proc, test):
    """SIGTERM, then the exit must be clean and quick."""
    start = time.monotonic()
    proc.send_signal(signal.SIGTERM)
    try:
        out, err = proc.communicate(timeout=5)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.communicate()
        test.fail("vigie did not stop within 5 s of SIGTERM")
    test.assertEqual(proc.returncode, 0, err)
    test.assertLess(time.monotonic() - start, 2.0)
    return out, err


class KustomizeTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.docs = {o: render(os.path.join(K8S, "overlays", o)) for o in OVERLAYS}
        cls.docs["base"] = render(os.path.join(K8S, "base"))

    def test_every_overlay_has_config_service_and_pdb(self):
        for name, docs in self.docs.items():
            with self.subTest(overlay=name):
                cm = one(docs, "ConfigMap")
                self.assertRegex(cm["metadata"]["name"], r"^vigie-config-[a-z0-9]{10}$")
                svc = one(docs, "Service", "vigie")
                pod_labels = workload(docs)["spec"]["template"]["metadata"]["labels"]
                self.assertTrue(selects(svc["spec"]["selector"], pod_labels))
                self.assertEqual([(p["name"], p["port"]) for p in svc["spec"]["ports"]],
                                 [("http", PORT)])
                pdb = one(docs, "PodDisruptionBudget")
                self.assertTrue(selects(pdb["spec"]["selector"]["matchLabels"], pod_labels))
                self.assertEqual(pdb["spec"]["maxUnavailable"], 1)

    def test_pods_are_hardened_probed_and_bounded(self):
        for name, docs in self.docs.items():
            with self.subTest(overlay=name):
                w = workload(docs)
                pod = w["spec"]["template"]["spec"]
                psc = pod["securityContext"]
                self.assertTrue(psc["runAsNonRoot"])
                self.assertNotEqual(psc["runAsUser"], 0)
                self.assertEqual(psc["seccompProfile"]["type"], "RuntimeDefault")
                self.assertFalse(pod["automountServiceAccountToken"])
                c = container(w)
                sc = c["securityContext"]
                self.assertTrue(sc["runAsNonRoot"])
                self.assertTrue(sc["readOnlyRootFilesystem"])
                self.assertFalse(sc["allowPrivilegeEscalation"])
                self.assertFalse(sc["privileged"])
                self.assertEqual(sc["capabilities"]["drop"], ["ALL"])
                self.assertNotIn("add", sc["capabilities"])
                for kind in ("requests", "limits"):
                    self.assertEqual(set(c["resources"][kind]), {"cpu", "memory"}, kind)
                ports = {p["name"]: p["containerPort"] for p in c["ports"]}
                self.assertEqual(ports, {"http": PORT})
                self.assertEqual(c["livenessProbe"]["httpGet"], {"path": "/healthz", "port": "http"})
                self.assertEqual(c["readinessProbe"]["httpGet"], {"path": "/readyz", "port": "http"})
                self.assertEqual(c["image"], "vigie:0.1.0")

    def test_config_comes_from_the_configmap_and_secrets_from_the_secret(self):
        for name, docs in self.docs.items():
            with self.subTest(overlay=name):
                w = workload(docs)
                c = container(w)
                env = env_of(c)
                self.assertEqual(env["VIGIE_LISTEN"]["value"], f"0.0.0.0:{PORT}")
                self.assertEqual(env["VIGIE_LOG_FORMAT"]["value"], "json")
                config = env["VIGIE_CONFIG"]["value"]
                mount = next(m for m in c["volumeMounts"] if m["name"] == "config")
                self.assertTrue(mount["readOnly"])
                # A subPath mount would never see the kubelet's updates.
                self.assertNotIn("subPath", mount)
                self.assertEqual(os.path.dirname(config), mount["mountPath"])
                vol = next(v for v in w["spec"]["template"]["spec"]["volumes"]
                           if v["name"] == "config")
                cm = one(docs, "ConfigMap")
                self.assertEqual(vol["configMap"]["name"], cm["metadata"]["name"])
                self.assertIn(os.path.basename(config), cm["data"])
                self.assertIn({"secretRef": {"name": "vigie-secrets", "optional": True}},
                              c["envFrom"])
                # The file system is read-only; /tmp is a small memory volume.
                tmp = next(m for m in c["volumeMounts"] if m["mountPath"] == "/tmp")
                self.assertTrue(any(v["name"] == tmp["name"] and "emptyDir" in v
                                    for v in w["spec"]["template"]["spec"]["volumes"]))

    def test_configmap_is_the_example_and_check_config_accepts_it(self):
        with open(os.path.join(K8S, "base", "vigie.yaml")) as f:
            example = f.read()
        for name, docs in self.docs.items():
            with self.subTest(overlay=name):
                text = one(docs, "ConfigMap")["data"]["vigie.yaml"]
                self.assertEqual(text, example)
                with tempfile.NamedTemporaryFile("w", suffix=".yaml") as f:
                    f.write(text)
                    f.flush()
                    # No environment at all: the example needs no variable.
                    r = subprocess.run([VIGIE, "check-config", f.name], env={},
                                       capture_output=True, text=True, timeout=30)
                    self.assertEqual(r.returncode, 0, r.stderr)
                    self.assertIn("ok (1 services, 1 checks)", r.stdout)

    def test_check_config_would_refuse_a_broken_configmap(self):
        text = one(self.docs["single"], "ConfigMap")["data"]["vigie.yaml"]
        with tempfile.NamedTemporaryFile("w", suffix=".yaml") as f:
            f.write(text.replace("interval: 30s", "interval: soon"))
            f.flush()
            r = subprocess.run([VIGIE, "check-config", f.name], env={}, capture_output=True,
                               text=True, timeout=30)
            self.assertEqual(r.returncode, 1)
            self.assertIn("interval", r.stderr)

    def test_single_is_one_deployment_replica(self):
        docs = self.docs["single"]
        self.assertEqual(objects(docs, "StatefulSet"), [])
        d = one(docs, "Deployment", "vigie")
        self.assertEqual(d["spec"]["replicas"], 1)
        self.assertEqual(d["spec"]["strategy"]["rollingUpdate"]["maxUnavailable"], 0)
        env = env_of(container(d))
        for shard_var in ("VIGIE_SHARD", "VIGIE_SHARD_COUNT", "VIGIE_PEERS_DNS"):
            self.assertNotIn(shard_var, env)

    def test_sharded_is_a_statefulset_wired_to_its_shards(self):
        docs = self.docs["sharded"]
        self.assertEqual(objects(docs, "Deployment"), [])
        s = one(docs, "StatefulSet", "vigie")
        n = s["spec"]["replicas"]
        self.assertGreaterEqual(n, 2)
        self.assertEqual(s["spec"]["podManagementPolicy"], "Parallel")
        env = env_of(container(s))
        self.assertEqual(env["VIGIE_SHARD_COUNT"]["value"], str(n))
        self.assertEqual(env["POD_NAME"]["valueFrom"]["fieldRef"]["fieldPath"], "metadata.name")
        self.assertNotIn("VIGIE_SHARD", env)  # N/M would win over the pod ordinal
        peers = one(docs, "Service", s["spec"]["serviceName"])
        self.assertEqual(peers["spec"]["clusterIP"], "None")
        self.assertTrue(peers["spec"]["publishNotReadyAddresses"])
        pod_labels = s["spec"]["template"]["metadata"]["labels"]
        self.assertTrue(selects(peers["spec"]["selector"], pod_labels))
        self.assertTrue(selects(s["spec"]["selector"]["matchLabels"], pod_labels))
        self.assertEqual(env["VIGIE_PEERS_DNS"]["value"], f"{peers['metadata']['name']}:{PORT}")

    def test_shard_count_follows_replicas(self):
        with tempfile.TemporaryDirectory() as tmp:
            tree = os.path.join(tmp, "kubernetes")
            shutil.copytree(K8S, tree)
            k = os.path.join(tree, "overlays", "sharded", "kustomization.yaml")
            with open(k) as f:
                text = f.read()
            self.assertIn("count: 3", text)
            with open(k, "w") as f:
                f.write(text.replace("count: 3", "count: 5"))
            s = one(render(os.path.join(tree, "overlays", "sharded")), "StatefulSet")
            self.assertEqual(s["spec"]["replicas"], 5)
            self.assertEqual(env_of(container(s))["VIGIE_SHARD_COUNT"]["value"], "5")

    def test_config_change_renames_the_configmap_so_pods_roll(self):
        with tempfile.TemporaryDirectory() as tmp:
            tree = os.path.join(tmp, "kubernetes")
            shutil.copytree(K8S, tree)
            cfg = os.path.join(tree, "base", "vigie.yaml")
            with open(cfg) as f:
                text = f.read()
            with open(cfg, "w") as f:
                f.write(text.replace('location: "default"', 'location: "elsewhere"'))
            for overlay in ("single", "sharded"):
                with self.subTest(overlay=overlay):
                    before = self.docs[overlay]
                    after = render(os.path.join(tree, "overlays", overlay))
                    old = one(before, "ConfigMap")["metadata"]["name"]
                    new = one(after, "ConfigMap")["metadata"]["name"]
                    self.assertNotEqual(old, new)
                    vol = next(v for v in workload(after)["spec"]["template"]["spec"]["volumes"]
                               if v["name"] == "config")
                    self.assertEqual(vol["configMap"]["name"], new)

    def test_prometheus_operator_scrapes_vigie_and_carries_the_rules(self):
        docs = self.docs["prometheus-operator"]
        sm = one(docs, "ServiceMonitor", "vigie")
        svc = one(docs, "Service", "vigie")
        selector = sm["spec"]["selector"]["matchLabels"]
        self.assertTrue(selects(selector, svc["metadata"]["labels"]))
        # The rules' up{job="vigie"}: the operator names the job after the Service.
        self.assertEqual(svc["metadata"]["name"], "vigie")
        self.assertNotIn("jobLabel", sm["spec"])
        # With shards, the headless peers Service must not be scraped a second time.
        peers = one(self.docs["sharded"], "Service", "vigie-peers")
        self.assertFalse(selects(selector, peers["metadata"]["labels"]))
        self.assertEqual([(e["port"], e["path"]) for e in sm["spec"]["endpoints"]],
                         [("http", "/metrics")])
        rule = one(docs, "PrometheusRule", "vigie")
        with open(os.path.join(SRC, "dashboards", "alerts", "vigie-rules.yaml")) as f:
            rules = yaml.safe_load(f)
        self.assertEqual(rule["spec"]["groups"], rules["groups"])
        self.assertGreater(sum(len(g["rules"]) for g in rule["spec"]["groups"]), 0)
        # The workload is the single one, unchanged.
        self.assertEqual(workload(docs), workload(self.docs["single"]))

    def test_generated_prometheusrule_is_up_to_date(self):
        committed = os.path.join(K8S, "overlays", "prometheus-operator", "prometheusrule.yaml")
        with tempfile.TemporaryDirectory() as tmp:
            out = os.path.join(tmp, "rule.yaml")
            subprocess.run(["bash", os.path.join(K8S, "gen-prometheusrule.sh"), out], check=True,
                           timeout=30)
            with open(out) as a, open(committed) as b:
                self.assertEqual(a.read(), b.read(),
                                 "run packaging/kubernetes/gen-prometheusrule.sh")


class ShardWiringTest(unittest.TestCase):
    def test_each_pod_runs_the_shard_of_its_ordinal(self):
        docs = render(os.path.join(K8S, "overlays", "sharded"))
        s = one(docs, "StatefulSet", "vigie")
        n = s["spec"]["replicas"]
        c = container(s)
        with tempfile.TemporaryDirectory() as tmp:
            cfg = os.path.join(tmp, "vigie.yaml")
            with open(cfg, "w") as f:
                f.write(one(docs, "ConfigMap")["data"]["vigie.yaml"])
            procs = []
            try:
                for k in range(n):
                    env = {"PATH": "/usr/bin:/bin"}
                    for name, e in env_of(c).items():
                        if "value" in e:
                            env[name] = e["value"]
                        elif e["valueFrom"]["fieldRef"]["fieldPath"] == "metadata.name":
                            env[name] = f"{s['metadata']['name']}-{k}"
                    port = free_port()
                    # Loopback only, and no DNS look-up of the cluster's peer name here.
                    env["VIGIE_LISTEN"] = f"127.0.0.1:{port}"
                    env["VIGIE_CONFIG"] = cfg
                    env["VIGIE_PEERS_DNS"] = ""
                    p = subprocess.Popen([VIGIE], env=env, stdout=subprocess.PIPE,
                                         stderr=subprocess.PIPE, text=True)
                    procs.append((k, port, p))
                for k, port, p in procs:
                    wait_ready(port, p)
                    doc = json.loads(get(f"http://127.0.0.1:{port}/api/v1/checks")[1])
                    self.assertEqual(doc["shard"], {"index": k, "count": n})
                for k, port, p in procs:
                    out, _ = stop(p, self)
                    self.assertIn(f"shard {k}/{n}", out)
            finally:
                for _, _, p in procs:
                    cleanup(p)


class RuntimeTest(unittest.TestCase):
    def test_example_runs_from_the_environment_and_stops_on_sigterm(self):
        with open(os.path.join(K8S, "base", "vigie.yaml")) as f:
            text = f.read()
        port = free_port()
        with tempfile.TemporaryDirectory() as tmp:
            cfg = os.path.join(tmp, "vigie.yaml")
            with open(cfg, "w") as f:
                # The self check follows the port; a short interval so it runs at once.
                f.write(text.replace(f"127.0.0.1:{PORT}", f"127.0.0.1:{port}")
                        .replace("interval: 30s", "interval: 1s").replace("timeout: 5s", "timeout: 500ms"))
            env = {"PATH": "/usr/bin:/bin", "VIGIE_CONFIG": cfg,
                   "VIGIE_LISTEN": f"127.0.0.1:{port}", "VIGIE_LOG_FORMAT": "json"}
            # Read-only: the working directory is one vigie may not write to.
            os.chmod(tmp, 0o555)
            p = subprocess.Popen([VIGIE], env=env, cwd=tmp, stdout=subprocess.PIPE,
                                 stderr=subprocess.PIPE, text=True)
            try:
                self.assertLess(wait_ready(port, p), 2.0)
                self.assertEqual(get(f"http://127.0.0.1:{port}/healthz")[0], 200)
                state = None
                deadline = time.monotonic() + 8
                while time.monotonic() < deadline and state != "up":
                    doc = json.loads(get(f"http://127.0.0.1:{port}/api/v1/checks")[1])
                    state = next(c["state"] for c in doc["checks"] if c["key"] == "vigie/self")
                    time.sleep(0.1)
                self.assertEqual(state, "up")
                out, err = stop(p, self)
            finally:
                os.chmod(tmp, 0o755)
                cleanup(p)
            self.assertEqual(err, "")
            lines = [json.loads(line) for line in out.splitlines()]
            self.assertTrue(any(f"listening on 127.0.0.1:{port}" in l["msg"] for l in lines))
            self.assertEqual(lines[-1]["msg"], "stopped")
            self.assertEqual(os.listdir(tmp), ["vigie.yaml"])


class SystemdTest(unittest.TestCase):
    UNIT = os.path.join(SRC, "packaging", "systemd", "vigie.service")

    def setUp(self):
        with open(self.UNIT) as f:
            self.text = f.read()
        self.directives = {}
        for line in self.text.splitlines():
            m = re.match(r"^(\w+)=(.*)$", line)
            if m:
                self.directives.setdefault(m.group(1), []).append(m.group(2))

    def verify_copy(self, tmp, text):
        """systemd-analyze verify on a copy whose vigie is the built binary, with the
        man page of packaging/ (verify runs `man` for Documentation=)."""
        unit = os.path.join(tmp, "vigie.service")
        with open(unit, "w") as f:
            f.write(text.replace("/usr/bin/vigie", VIGIE))
        man1 = os.path.join(tmp, "man", "man1")
        os.makedirs(man1)
        shutil.copy(os.path.join(SRC, "packaging", "vigie.1"), man1)
        env = dict(os.environ, MANPATH=os.path.join(tmp, "man"))
        return subprocess.run(["systemd-analyze", "verify", unit], env=env, capture_output=True,
                              text=True, timeout=60)

    def test_verify_is_clean(self):
        with tempfile.TemporaryDirectory() as tmp:
            r = self.verify_copy(tmp, self.text)
            self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
            self.assertEqual(r.stdout + r.stderr, "")

    def test_verify_catches_a_broken_unit(self):
        with tempfile.TemporaryDirectory() as tmp:
            r = self.verify_copy(tmp, self.text.replace("ExecStart=/usr/bin/vigie",
                                                        "ExecStart=/usr/bin/vigie-missing"))
            self.assertNotEqual(r.returncode, 0)

    def test_hardening(self):
        d = self.directives
        self.assertEqual(d["DynamicUser"], ["yes"])
        self.assertEqual(d["ProtectSystem"], ["strict"])
        self.assertEqual(d["NoNewPrivileges"], ["yes"])
        self.assertEqual(d["CapabilityBoundingSet"], [""])
        # Write access only where a drop-in adds a disk check's path.
        self.assertNotIn("ReadWritePaths", d)
        self.assertIn("ReadWritePaths=", self.text)  # the comment that says how
        self.assertEqual(d["ExecReload"][-1], "/bin/kill -HUP $MAINPID")
        self.assertEqual(d["ExecStart"], ["/usr/bin/vigie"])
        self.assertIn("VIGIE_CONFIG=/etc/vigie/vigie.yaml", d["Environment"])
        self.assertEqual(d["EnvironmentFile"], ["-/etc/default/vigie"])
        r = subprocess.run(["systemd-analyze", "security", "--offline=true", self.UNIT],
                           capture_output=True, text=True, timeout=60)
        m = re.search(r"Overall exposure level for vigie\.service: ([0-9.]+)", r.stdout)
        self.assertIsNotNone(m, r.stdout + r.stderr)
        self.assertLessEqual(float(m.group(1)), 2.0, r.stdout)


class ContainerTest(unittest.TestCase):
    def setUp(self):
        with open(os.path.join(SRC, "packaging", "container", "Dockerfile")) as f:
            text = f.read()
        # Join continuation lines, drop comments: one instruction per entry.
        text = re.sub(r"\\\n", " ", text)
        self.stages = []
        for line in text.splitlines():
            line = line.strip()
            if not line or line.startswith("#"):
                continue
            word, _, rest = line.partition(" ")
            if word.upper() == "FROM":
                self.stages.append({"from": rest, "steps": []})
            elif self.stages:
                self.stages[-1]["steps"].append((word.upper(), rest.strip()))

    def steps(self, stage, word):
        return [rest for w, rest in stage["steps"] if w == word]

    def test_two_stages_build_on_debian_12_run_on_slim(self):
        self.assertEqual(len(self.stages), 2)
        self.assertEqual(self.stages[0]["from"], "debian:12 AS build")
        self.assertEqual(self.stages[1]["from"], "debian:12-slim")

    def test_build_stage_runs_the_scripts_ci_runs(self):
        runs = " ".join(self.steps(self.stages[0], "RUN"))
        self.assertIn("bash scripts/install-deps.sh --runtime-only", runs)
        self.assertIn("bash scripts/package.sh", runs)
        for script in ("install-deps.sh", "package.sh"):
            self.assertTrue(os.access(os.path.join(SRC, "scripts", script), os.X_OK))

    def test_final_stage_has_only_the_package(self):
        final = self.stages[1]
        self.assertEqual(self.steps(final, "COPY") + self.steps(final, "ADD"), [])
        runs = " ".join(self.steps(final, "RUN"))
        installed = re.search(r"apt-get install ([^&]*)", runs).group(1).split()
        self.assertEqual([w for w in installed if not w.startswith("-")],
                         ["/pkg/vigie.deb", "ca-certificates"])
        self.assertIn("--no-install-recommends", installed)
        self.assertIn("rm -rf /var/lib/apt/lists/*", runs)

    def test_final_stage_runs_vigie_as_non_root_from_the_environment(self):
        final = self.stages[1]
        user = self.steps(final, "USER")
        self.assertEqual(len(user), 1)
        uid, _, gid = user[0].partition(":")
        self.assertTrue(uid.isdigit() and int(uid) != 0, "numeric, for runAsNonRoot")
        self.assertTrue(gid.isdigit() and int(gid) != 0)
        self.assertEqual(self.steps(final, "ENTRYPOINT"), ['["/usr/bin/vigie"]'])
        env = " ".join(self.steps(final, "ENV"))
        for var in ("VIGIE_CONFIG=/etc/vigie/vigie.yaml", "VIGIE_LISTEN=0.0.0.0:9877",
                    "VIGIE_LOG_FORMAT=json"):
            self.assertIn(var, env)
        self.assertEqual(self.steps(final, "EXPOSE"), [str(PORT)])
        # The .deb puts the example where VIGIE_CONFIG points.
        with open(os.path.join(SRC, "packaging", "cpack.cmake")) as f:
            self.assertIn("DESTINATION /etc/vigie)", f.read())

    def test_oci_labels(self):
        labels = " ".join(self.steps(self.stages[1], "LABEL"))
        for key in ("title", "description", "version", "revision", "created", "licenses",
                    "base.name"):
            self.assertIn(f"org.opencontainers.image.{key}=", labels)

    def test_dockerignore_keeps_the_context_small(self):
        with open(os.path.join(SRC, ".dockerignore")) as f:
            patterns = [l.strip() for l in f if l.strip() and not l.startswith("#")]
        for p in (".git", "build*", "**/node_modules"):
            self.assertIn(p, patterns)


if __name__ == "__main__":
    unittest.main(verbosity=2)
