"""Drain3 as a same-run baseline for `npm run eval -- parse` (bench/eval-parse.ts).

Reads one log message per line on stdin, mines them in order with Drain3's default configuration
(similarity 0.4, depth 4, max 100 children, no masking) and writes one JSON line per message:
the cluster id and template Drain3 gave it at that moment, then a last line
{"final": {cluster_id: template}} with the templates at the end of the run.
With --time it reads every line first, then mines them and prints only
{"lines": n, "cpuSeconds": s} (process CPU time of the mining alone), for bench/ingest.ts.
Exit code 3 when drain3 is not installed (pip install drain3).
"""
import json
import sys
import time

try:
    from drain3 import TemplateMiner
    from drain3.template_miner_config import TemplateMinerConfig
except ImportError:
    sys.stderr.write("drain3 is not installed (pip install drain3)\n")
    sys.exit(3)


def main() -> None:
    config = TemplateMinerConfig()
    config.profiling_enabled = False
    miner = TemplateMiner(config=config)
    out = sys.stdout
    if "--time" in sys.argv:
        lines = [raw.rstrip("\n") for raw in sys.stdin]
        t0 = time.process_time()
        for msg in lines:
            miner.add_log_message(msg)
        out.write(json.dumps({"lines": len(lines), "cpuSeconds": time.process_time() - t0}) + "\n")
        return
    for raw in sys.stdin:
        msg = raw.rstrip("\n")
        r = miner.add_log_message(msg)
        out.write(json.dumps({"id": r["cluster_id"], "template": r["template_mined"]}) + "\n")
    final = {str(c.cluster_id): c.get_template() for c in miner.drain.clusters}
    out.write(json.dumps({"final": final}) + "\n")


if __name__ == "__main__":
    main()
