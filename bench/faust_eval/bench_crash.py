"""Bench 3: SIGKILL the faust worker after ~KILL_AT of 50k commands, restart, let it finish, then audit
events topic (per cmd id), replies, and the table as recovered from its changelog topic.
Usage: bench_crash.py TAG RUNS [dedupe]"""
import asyncio, collections, json, sys, time
from harness import faust_worker
import common

N, KILL_AT = 50000, 20000
tag, runs = sys.argv[1], int(sys.argv[2])
dedupe = len(sys.argv) > 3 and sys.argv[3] == "dedupe"


def audit(prefix, app_id):
    evs = asyncio.run(common.read_all(f"{prefix}-events"))
    reps = asyncio.run(common.read_all(f"{prefix}-replies"))
    cl = asyncio.run(common.read_all(f"{app_id}-agg_count-changelog"))
    per_cmd = collections.Counter(); per_agg = collections.Counter(); seqs = collections.defaultdict(list)
    for _, _, k, v, _ in evs:
        e = json.loads(v); per_cmd[e["cmd_id"]] += 1; per_agg[e["agg"]] += 1; seqs[e["agg"]].append(e["seq"])
    rep_cmd = collections.Counter(json.loads(v)["cmd_id"] for *_, v, _ in [(a, b, c, d, t) for a, b, c, d, t in reps])
    table = {}
    for _, _, k, v, _ in cl:  # last value per key wins == what recovery rebuilds
        ks = k.decode()
        table[json.loads(ks) if ks.startswith('"') else ks] = json.loads(v)  # faust json-encodes table keys
    all_ids = [f"c-{i}" for i in range(N)]
    lost = [c for c in all_ids if per_cmd[c] == 0]
    dup_cmds = [c for c in all_ids if per_cmd[c] > 1]
    extra_events = sum(per_cmd[c] - 1 for c in dup_cmds)
    rep_lost = sum(1 for c in all_ids if rep_cmd[c] == 0)
    rep_dup = sum(rep_cmd[c] - 1 for c in all_ids if rep_cmd[c] > 1)
    mism = {a: (table.get(a), per_agg[a]) for a in set(table) | set(per_agg) if table.get(a, 0) != per_agg[a]}
    seq_gaps = sum(len(set(range(1, max(s) + 1)) - set(s)) for s in seqs.values())
    seq_dups = sum(len(s) - len(set(s)) for s in seqs.values())
    table_minus_events = sum((table.get(a, 0) - per_agg[a]) for a in set(table) | set(per_agg))
    print(f"  events total={len(evs)} distinct cmd_ids={sum(1 for c in all_ids if per_cmd[c])} "
          f"lost cmds={len(lost)} cmds with dup events={len(dup_cmds)} extra events={extra_events}")
    print(f"  replies total={len(reps)} cmds without reply={rep_lost} extra replies={rep_dup}")
    print(f"  table(from changelog, {len(cl)} records) keys={len(table)} sum={sum(table.values())}; "
          f"aggs where table!=#events: {len(mism)}; sum(table - #events)={table_minus_events}; "
          f"seq gaps in events={seq_gaps}; duplicate seq numbers={seq_dups}")
    if mism:
        print("  sample mismatches (table, events):", list(mism.items())[:5])
    return dict(lost=len(lost), dup=len(dup_cmds), extra=extra_events, mism=len(mism), gaps=seq_gaps)


for r in range(1, runs + 1):
    prefix = f"cr{tag}r{r}{'d' if dedupe else ''}"
    app_id = f"{prefix}-faust"
    extra = {"DEDUPE": "1"} if dedupe else {}
    asyncio.run(common.create_topics([f"{prefix}-cmds", f"{prefix}-events", f"{prefix}-replies"]))
    asyncio.run(common.produce_cmds(f"{prefix}-cmds", N))
    w = faust_worker(prefix, app_id, logname=f"{app_id}-a.log", extra=extra)
    w.wait_mark(f"PROCESSED {KILL_AT}", timeout=600)
    time.sleep(0.05 * r)  # vary the kill point a little between runs
    w.kill()
    lag = asyncio.run(common.group_lag(app_id, f"{prefix}-cmds"))
    print(f"RUN {r}{' (DEDUPE table)' if dedupe else ''}: SIGKILLed after PROCESSED {KILL_AT}; committed lag at kill = {lag} "
          f"(=> {N - lag} cmds committed)", flush=True)
    w2 = faust_worker(prefix, app_id, logname=f"{app_id}-b.log", extra=extra)
    try:
        t = asyncio.run(common.wait_group_done(app_id, f"{prefix}-cmds", timeout=180))
    except TimeoutError:
        t = float("nan")
        print(f"  !! committed offsets did not reach the end within 180s after restart; lag now "
              f"{asyncio.run(common.group_lag(app_id, f'{prefix}-cmds'))}", flush=True)
    time.sleep(3)
    errs = set(l.strip()[:160] for l in w2.warnings_errors())
    w2.term()
    print(f"  lag after SIGTERM of restarted worker: {asyncio.run(common.group_lag(app_id, f'{prefix}-cmds'))}", flush=True)
    print(f"  restart finished in {t:.1f}s; restart warnings/errors: {errs or 'none'}", flush=True)
    audit(prefix, app_id)
