"""Where does faust's per-message time go? Same 50k commands, fresh app id per variant."""
import asyncio, sys, time
from harness import faust_worker
import common
N = 50000
tag = sys.argv[1]
prefix = f"fv{tag}"
asyncio.run(common.create_topics([f"{prefix}-cmds", f"{prefix}-events", f"{prefix}-replies"]))
asyncio.run(common.produce_cmds(f"{prefix}-cmds", N))
for name, extra in [("table+2 sends (full)", {}), ("table only, no sends", {"USE_SEND": "0"}),
                    ("2 sends only, no table", {"USE_TABLE": "0"}), ("neither (bare agent loop)", {"USE_TABLE": "0", "USE_SEND": "0"})]:
    app_id = f"{prefix}-{len(name)}-{int(time.time())}"
    w = faust_worker(prefix, app_id, extra=extra)
    f = w.wait_mark("FIRST_MSG"); d = w.wait_mark(f"PROCESSED {N}", timeout=900)
    print(f"FAUST variant {name:28s}: {(N-1)/(d-f):7.0f} msg/s ({d-f:.2f}s)", flush=True)
    w.term()
