"""Time to first byte and to the first answer token: `stream: true` against the non-streaming path.

`cascade serve` runs in this process (uvicorn on loopback) with a real cascade; every item is asked
twice over HTTP, streamed and not. The requests interleave with a lag (plain i, stream i-1, plain
i+1, stream i, ...), so no request follows one for the same item: llama.cpp's prompt cache would
otherwise make whichever mode comes second look faster. A warm-up question (the item before
`--offset`) loads the models first. Per item: the non-streaming latency (the whole answer arrives at
once), and for the stream the first byte (the admission comment), the first chunk of text (content,
or the reasoning a live tier's answer is read from, sent as `reasoning_content`) and the last one.
The ratio first content / non-streaming latency is reported per item with a bootstrap 95% interval
of its median (scipy), overall and by whether the answering tier streamed live (the last tier) or
was sent whole once accepted.

    python -m benchmarks.streaming [--config configs/local.yaml] \\
        [--dataset ../shared/data/qa/arith/SingleEq.json] [--offset 400] [--limit 10]

Last line: one JSON object with n, the medians and intervals, and the load average.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time
from dataclasses import asdict, dataclass
from typing import Any

import httpx
import numpy as np
from scipy.stats import bootstrap

from cascade import Cascade
from cascade.eval.data.formats import load_dataset
from cascade.serve import ServeSettings, create_app
from cascade.serve.background import serve_in_thread


@dataclass
class Timing:
    item: str
    plain_s: float  # non-streaming: the whole response
    first_byte_s: float  # streaming: the first byte of the body
    first_token_s: float  # streaming: the first content chunk
    last_token_s: float  # streaming: the last content chunk
    final_tier: str
    live: bool  # the answering tier's text streamed as it was written
    stream_text_is_answer: bool  # the streamed content equals the non-streamed (issue 21: always, by design)


def ask_plain(client: httpx.Client, model: str, question: str) -> tuple[float, str]:
    started = time.perf_counter()
    response = client.post("/v1/chat/completions", json={"model": model, "messages": [_user(question)]})
    response.raise_for_status()
    return time.perf_counter() - started, response.json()["choices"][0]["message"]["content"]


def ask_streamed(client: httpx.Client, model: str, question: str) -> dict[str, Any]:
    body = {"model": model, "messages": [_user(question)], "stream": True}
    started = time.perf_counter()
    seen: dict[str, Any] = {"text": "", "live": False, "tier": ""}
    with client.stream("POST", "/v1/chat/completions", json=body) as response:
        response.raise_for_status()
        for line in response.iter_lines():
            now = time.perf_counter() - started
            seen.setdefault("first_byte", now)
            if line.startswith(": cascade tier=") and "live=" in line:
                seen["live"] = line.endswith("live=true")
            if not line.startswith("data: {"):
                continue
            chunk = json.loads(line[6:])
            if "error" in chunk:
                raise RuntimeError(chunk["error"]["message"])
            delta = chunk["choices"][0]["delta"] if chunk["choices"] else {}
            if delta.get("content") or delta.get("reasoning_content"):  # what a chat UI shows as it comes
                seen.setdefault("first_token", now)
                seen["last_token"], seen["text"] = now, seen["text"] + (delta.get("content") or "")
            if chunk.get("cascade"):
                seen["tier"] = chunk["cascade"]["final_tier"]
    return seen


def _user(question: str) -> dict[str, str]:
    return {"role": "user", "content": question}


def median_ci(values: list[float]) -> dict[str, float]:
    if len(values) < 2:
        return {"median": values[0] if values else float("nan"), "low": float("nan"), "high": float("nan")}
    ci = bootstrap(
        (np.array(values),), np.median, n_resamples=5000, confidence_level=0.95, method="percentile", random_state=0
    )
    return {"median": statistics.median(values), "low": ci.confidence_interval.low, "high": ci.confidence_interval.high}


def lagged(n: int) -> list[tuple[str, int]]:
    """plain 0, plain 1, stream 0, plain 2, stream 1, ..., stream n-1: no request follows one for its item."""
    order = [("plain", 0)] if n else []
    for i in range(1, n):
        order += [("plain", i), ("stream", i - 1)]
    return order + ([("stream", n - 1)] if n else [])


def timing_of(item: str, plain: tuple[float, str], stream: dict[str, Any]) -> Timing:
    (plain_s, plain_text), nan = plain, float("nan")
    return Timing(
        item, plain_s, stream["first_byte"], stream.get("first_token", nan), stream.get("last_token", nan),
        stream["tier"], stream["live"], stream["text"].strip() == plain_text.strip(),
    )  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", default="configs/local.yaml")
    parser.add_argument("--dataset", default="../shared/data/qa/arith/SingleEq.json")
    parser.add_argument("--offset", type=int, default=400)
    parser.add_argument("--limit", type=int, default=10)
    args = parser.parse_args()
    cascade = Cascade.from_yaml(args.config)
    warm_up, *items = load_dataset(args.dataset)[args.offset - 1 : args.offset + args.limit]
    app = create_app({"bench": cascade}, ServeSettings(api_keys=()))
    timings = []
    with serve_in_thread(app) as url, httpx.Client(base_url=url, timeout=1800) as client:
        ask_plain(client, "bench", warm_up.question)  # loads the models; not measured
        got: dict[tuple[str, int], Any] = {}
        for mode, i in lagged(len(items)):
            got[mode, i] = (ask_plain if mode == "plain" else ask_streamed)(client, "bench", items[i].question)
            if mode == "stream":
                timings.append(timing_of(items[i].id, got["plain", i], got["stream", i]))
                print(json.dumps(asdict(timings[-1])), flush=True)
    ratios = [t.first_token_s / t.plain_s for t in timings]
    summary = {
        "n": len(timings),
        "config": args.config,
        "same_content": sum(t.stream_text_is_answer for t in timings),  # streamed content == non-streamed
        "plain_s": median_ci([t.plain_s for t in timings]),
        "first_byte_s": median_ci([t.first_byte_s for t in timings]),
        "first_token_s": median_ci([t.first_token_s for t in timings]),
        "first_token_over_plain": median_ci(ratios),
        "live": {
            "n": sum(t.live for t in timings),
            "first_token_over_plain": median_ci([r for r, t in zip(ratios, timings, strict=True) if t.live]),
        },
        "whole": {
            "n": sum(not t.live for t in timings),
            "first_token_over_plain": median_ci([r for r, t in zip(ratios, timings, strict=True) if not t.live]),
        },
        "load_average": os.getloadavg(),
    }
    print(json.dumps(summary))


if __name__ == "__main__":
    main()
