"""Decode speed of a local model with OpenMP's spinning waits (ACTIVE) against passive ones (PASSIVE).

    python -m benchmarks.omp_wait [--model smollm2-135m] [--rounds 4] [--tokens 40]

Each round runs the two settings in fresh processes, one after the other (the order alternates),
so both see the same machine load; tokens per second of greedy decoding after the prompt. Prints
the per-round figures, the load average, and ONE JSON object on its last line.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time

PROBE = """
import sys, time
from cascade.local.catalog import resolve_model
from cascade.local.engine import extra_buffers_setting, extra_buffers_wanted, import_llama_cpp
llama_cpp = import_llama_cpp()
with extra_buffers_setting(llama_cpp, extra_buffers=extra_buffers_wanted()):
    llm = llama_cpp.Llama(model_path=str(resolve_model(sys.argv[1])), n_ctx=512, n_threads=2, verbose=False)
tokens, n, started = llm.tokenize(b"Count from 1 to 100: 1, 2, 3,"), 0, time.perf_counter()
for _ in llm.generate(tokens, temp=0.0):
    n += 1
    if n >= int(sys.argv[2]):
        break
print(n / (time.perf_counter() - started))
"""


def speed(policy: str, model: str, tokens: int) -> float:
    env = {**os.environ, "OMP_WAIT_POLICY": policy}
    done = subprocess.run([sys.executable, "-c", PROBE, model, str(tokens)], env=env, capture_output=True, text=True)
    if done.returncode != 0:
        raise SystemExit(done.stderr[-2000:])
    return float(done.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="smollm2-135m", help="a local catalog model")
    parser.add_argument("--rounds", type=int, default=4, help="pairs of runs (the order alternates)")
    parser.add_argument("--tokens", type=int, default=40, help="tokens decoded per run")
    args = parser.parse_args()
    figures: dict[str, list[float]] = {"ACTIVE": [], "PASSIVE": []}
    load = os.getloadavg()[0]
    for round_ in range(args.rounds):
        order = ("ACTIVE", "PASSIVE") if round_ % 2 == 0 else ("PASSIVE", "ACTIVE")
        for policy in order:
            figures[policy].append(speed(policy, args.model, args.tokens))
        print(f"round {round_}: " + ", ".join(f"{p} {figures[p][-1]:.2f} tok/s" for p in order), flush=True)
    ratios = [p / a for a, p in zip(figures["ACTIVE"], figures["PASSIVE"], strict=True)]
    result = {
        "model": args.model,
        "rounds": args.rounds,
        "tokens": args.tokens,
        "load_average_1min_at_start": round(load, 2),
        "active_tok_s_median": round(statistics.median(figures["ACTIVE"]), 2),
        "passive_tok_s_median": round(statistics.median(figures["PASSIVE"]), 2),
        "passive_over_active_per_round": [round(r, 2) for r in ratios],
        "passive_over_active_min": round(min(ratios), 2),
        "finished_at": time.strftime("%Y-%m-%dT%H:%M:%S"),
    }
    print(json.dumps(result))


if __name__ == "__main__":
    main()
