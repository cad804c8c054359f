"""Subprocess harness: spawn worker, tee its stderr/stdout to a log, record wall time of marker lines."""
import os, re, subprocess, threading, time, signal

PY = "/work/main/.venv/bin/python"
HERE = os.path.dirname(os.path.abspath(__file__))


class Proc:
    def __init__(self, args, env_extra, logname):
        env = dict(os.environ, **env_extra, PYTHONUNBUFFERED="1")
        self.log = open(os.path.join(HERE, "logs", logname), "w")
        self.t_start = time.time()
        self.p = subprocess.Popen(args, env=env, cwd=HERE, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        self.marks = {}  # marker -> first wall time
        self.lines = []
        self.lock = threading.Lock()
        self.th = threading.Thread(target=self._read, daemon=True); self.th.start()

    def _read(self):
        for line in self.p.stdout:
            now = time.time()
            self.log.write(f"{now:.3f} {line}"); self.log.flush()
            with self.lock:
                self.lines.append((now, line))
                m = re.search(r"(FIRST_MSG|PROCESSED \d+)", line)
                if m:
                    key = m.group(1)
                    ts = re.search(r"(\d{10}\.\d+)\s*$", line.strip())
                    self.marks.setdefault(key, float(ts.group(1)) if ts else now)
                for k in ("Worker]: Ready", "Recovery complete", "Setting newly assigned partitions", "Revoking", "Joined group"):
                    if k in line:
                        self.marks.setdefault(k, now)
                        self.marks.setdefault(k + "#all", [])
                        self.marks[k + "#all"].append(now)

    def wait_mark(self, key, timeout=300):
        t0 = time.time()
        while time.time() - t0 < timeout:
            with self.lock:
                if key in self.marks:
                    return self.marks[key]
            if self.p.poll() is not None:
                raise RuntimeError(f"process exited rc={self.p.returncode} waiting for {key}")
            time.sleep(0.02)
        raise TimeoutError(key)

    def rss_kb(self):
        with open(f"/proc/{self.p.pid}/status") as f:
            for l in f:
                if l.startswith("VmRSS"):
                    return int(l.split()[1])

    def kill(self):
        self.p.send_signal(signal.SIGKILL); self.p.wait()

    def term(self, timeout=30):
        self.p.send_signal(signal.SIGTERM)
        try:
            self.p.wait(timeout)
        except subprocess.TimeoutExpired:
            self.kill()

    def warnings_errors(self):
        with self.lock:
            return [l for _, l in self.lines if ("[ERROR]" in l or "[WARNING]" in l or "Traceback" in l)
                    and "FIRST_MSG" not in l and "PROCESSED" not in l]


def faust_worker(prefix, app_id, worker="w1", logname=None, extra=None):
    env = dict(APP_ID=app_id, CMD_TOPIC=f"{prefix}-cmds", EVT_TOPIC=f"{prefix}-events",
               REPLY_TOPIC=f"{prefix}-replies", WORKER=worker, REPORT_EVERY="1000")
    env.update(extra or {})
    # NB: the `worker` CLI overrides App(web_enabled=False) with its --with-web default (measured: port 6066 was
    # listening), so --without-web must be passed explicitly.
    return Proc([PY, "decider_faust.py", "worker", "-l", "info", "--without-web"], env, logname or f"{app_id}-{worker}.log")
