"""Bench 1b: rebalance cost. Continuous feed 400 cmds/s into 4 partitions; w1 runs; w2 joins; w2 leaves (SIGTERM);
w2 joins again and is SIGKILLed. Per phase: per-partition processing stall (max gap between consecutive event
timestamps written by the workers), measured from the events topic."""
import asyncio, collections, json, sys, time
from harness import faust_worker, Proc, PY
import common

tag = sys.argv[1]
prefix = f"rb{tag}"; app_id = f"{prefix}-faust"; ct = f"{prefix}-cmds"
asyncio.run(common.create_topics([ct, f"{prefix}-events", f"{prefix}-replies"]))
feeder = Proc([PY, "feeder.py", ct, "400", "240", "0"], {}, f"{prefix}-feeder.log")
time.sleep(1)
phases = []
w1 = faust_worker(prefix, app_id, "w1")
f1 = w1.wait_mark("FIRST_MSG")
print(f"w1 cold spawn->first msg {f1 - w1.t_start:.2f}s (feed running)", flush=True)
time.sleep(15)

def nth_after(proc, key, t):
    with proc.lock:
        return [x for x in proc.marks.get(key + "#all", []) if x > t]

# join
tj = time.time(); phases.append(("w2 join", tj))
w2 = faust_worker(prefix, app_id, "w2", logname=f"{app_id}-w2a.log")
f2 = w2.wait_mark("FIRST_MSG", timeout=180)
time.sleep(1)
print(f"JOIN: w2 spawn->first msg {f2 - tj:.2f}s; w1 'Setting newly assigned partitions' at "
      f"{[round(x - tj, 2) for x in nth_after(w1, 'Setting newly assigned partitions', tj)]}s after spawn", flush=True)
time.sleep(20)
# graceful leave
tl = time.time(); phases.append(("w2 SIGTERM leave", tl))
w2.term()
print(f"LEAVE(SIGTERM): w2 exited after {time.time() - tl:.2f}s", flush=True)
time.sleep(20)
print(f"  w1 reassigned at {[round(x - tl, 2) for x in nth_after(w1, 'Setting newly assigned partitions', tl)]}s after SIGTERM", flush=True)
# join again then SIGKILL
w3 = faust_worker(prefix, app_id, "w2b", logname=f"{app_id}-w2b.log")
w3.wait_mark("FIRST_MSG", timeout=180); time.sleep(15)
tk = time.time(); phases.append(("w2 SIGKILL", tk))
w3.kill()
time.sleep(80)
print(f"KILL: w1 reassigned at {[round(x - tk, 2) for x in nth_after(w1, 'Setting newly assigned partitions', tk)]}s after SIGKILL", flush=True)
errs = set(l.strip()[:180] for p in (w1, w2, w3) for l in p.warnings_errors())
w1.term(); feeder.term()
print("warnings/errors during rebalances:", *errs, sep="\n  ")
evs = asyncio.run(common.read_all(f"{prefix}-events"))
byp = collections.defaultdict(list)
for part, off, k, v, ts in evs:
    e = json.loads(v); byp[part].append((e["ts"], e["w"]))
for name, t in phases:
    worst = 0; detail = []
    for part, lst in sorted(byp.items()):
        lst.sort()
        win = [x for x in lst if t - 2 <= x[0] <= t + 90]
        gaps = [(b[0] - a[0], a[1], b[1]) for a, b in zip(win, win[1:])]
        g = max(gaps) if gaps else (0, "", "")
        worst = max(worst, g[0]); detail.append(f"p{part}:{g[0]:.2f}s({g[1]}->{g[2]})")
    print(f"STALL {name}: worst per-partition gap {worst:.2f}s; " + " ".join(detail))
