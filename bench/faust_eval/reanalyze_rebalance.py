"""Re-analyse rb<tag> events with non-overlapping windows (phase times taken from worker log first/last lines)."""
import asyncio, collections, json, sys
import common
tag = sys.argv[1]; prefix = f"rb{tag}"
def first_last(name):
    ls = open(f"logs/{prefix}-faust-{name}.log").read().splitlines()
    return float(ls[0].split()[0]), float(ls[-1].split()[0])
j, l = first_last("w2a"); kj, k = first_last("w2b")
phases = [("w2 join", j, l - 1), ("w2 SIGTERM leave", l, kj - 1), ("w2b join", kj, k - 1), ("w2b SIGKILL", k, k + 90)]
evs = asyncio.run(common.read_all(f"{prefix}-events"))
byp = collections.defaultdict(list)
for part, off, key, v, ts in evs:
    e = json.loads(v); byp[part].append((e["ts"], e["w"]))
for name, t0, t1 in phases:
    worst = 0; det = []
    for part, lst in sorted(byp.items()):
        lst.sort(); win = [x for x in lst if t0 - 1 <= x[0] <= t1]
        gaps = [(b[0] - a[0], a[1], b[1]) for a, b in zip(win, win[1:])]
        g = max(gaps) if gaps else (0, "", ""); worst = max(worst, g[0])
        det.append(f"p{part}:{g[0]:.2f}s({g[1]}->{g[2]})")
    print(f"STALL {name} (window {t1 - t0:.0f}s): worst per-partition gap {worst:.2f}s; " + " ".join(det))
