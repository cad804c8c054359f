"""Bench 1 (cold start) + 2 (throughput) + idle RSS + warm restart (recovery from 50k-record changelog).
Faust worker vs plain aiokafka loop on the same 50k commands."""
import asyncio, subprocess, sys, time, os
from harness import Proc, faust_worker, PY
import common

N = 50000
tag = sys.argv[1] if len(sys.argv) > 1 else str(int(time.time()))
prefix = f"tp{tag}"
ct = f"{prefix}-cmds"
asyncio.run(common.create_topics([ct, f"{prefix}-events", f"{prefix}-replies", f"{prefix}-pevents", f"{prefix}-preplies", f"{prefix}-pstate"]))
asyncio.run(common.produce_cmds(ct, N))

def ss6066():
    out = subprocess.run(["ss", "-ltnp"], capture_output=True, text=True).stdout
    return [l for l in out.splitlines() if ":6066" in l]

# --- faust, cold (fresh app id, no changelog topic yet)
app_id = f"{prefix}-faust"
w = faust_worker(prefix, app_id)
first = w.wait_mark("FIRST_MSG")
ready = w.wait_mark("Worker]: Ready")
done = w.wait_mark(f"PROCESSED {N}", timeout=900)
print(f"FAUST cold: spawn->Worker ready {ready - w.t_start:.2f}s, spawn->first msg {first - w.t_start:.2f}s")
print(f"FAUST throughput: {N} cmds in {done - first:.2f}s = {(N-1)/(done-first):.0f} msg/s (first->{N}th)")
lag_t = asyncio.run(common.wait_group_done(app_id, ct))
print(f"FAUST all offsets committed {time.time() - done:.2f}s after {N}th processed")
time.sleep(10)
print(f"FAUST idle RSS after {N} msgs (1000-key table): {w.rss_kb()/1024:.1f} MiB; port 6066 listeners: {ss6066()}")
print("FAUST warnings/errors:", *set(l.strip()[:200] for l in w.warnings_errors()), sep="\n  ")
w.term()

# --- faust warm restart: same app id, changelog holds N records; 1000 new commands
asyncio.run(common.produce_cmds(ct, 1000, start=N))
w2 = faust_worker(prefix, app_id, logname=f"{app_id}-restart.log")
first2 = w2.wait_mark("FIRST_MSG")
ready2 = w2.wait_mark("Worker]: Ready")
print(f"FAUST warm restart (changelog {N} records): spawn->Worker ready {ready2 - w2.t_start:.2f}s, spawn->first msg {first2 - w2.t_start:.2f}s")
asyncio.run(common.wait_group_done(app_id, ct))
time.sleep(2)
print(f"FAUST idle RSS after restart: {w2.rss_kb()/1024:.1f} MiB")
w2.term()

# --- plain aiokafka loop on the same topic (N+1000 cmds), fresh group
p = Proc([PY, "plain_loop.py", f"{prefix}-plain", ct, f"{prefix}-pevents", f"{prefix}-preplies", f"{prefix}-pstate", str(N + 1000)],
         {}, f"{prefix}-plain.log")
pf = p.wait_mark("FIRST_MSG"); pd = p.wait_mark(f"PROCESSED {N}", timeout=900)
print(f"PLAIN cold: spawn->first msg {pf - p.t_start:.2f}s")
print(f"PLAIN throughput: {N} cmds in {pd - pf:.2f}s = {(N-1)/(pd-pf):.0f} msg/s (first->{N}th)")
p.p.wait(120)
print(f"PLAIN exit rc={p.p.returncode}")
