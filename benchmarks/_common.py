"""Shared helpers of the benchmark scripts: machine record, timing, table + JSON output, data path,
and a loopback OpenAI-compatible server with a fixed latency.

The scripts run as files (``python benchmarks/bench_x.py``), so this module is imported as
``_common`` from the scripts' own folder. Every benchmark prints a human table and then ONE
JSON line (the record), which ``--json PATH`` also writes to a file.

The server runs in its own process (``python benchmarks/_common.py serve-openai``) so that its
work does not compete with the measured client for this process's GIL; it counts the requests
it answers and the most it held at once, readable at ``GET /stats`` (not counted;
``GET /stats?reset`` also starts a new peak).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import platform
import subprocess
import sys
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_DATA = ROOT.parent / "shared" / "data" / "c2_eval_pku_saferlhf_test500.jsonl"


# ---------------------------------------------------------------- arguments and data


def base_parser(description: str) -> argparse.ArgumentParser:
    """Options every benchmark has: --quick, --json, --threads."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument(
        "--quick", action="store_true", help="tiny sizes: checks that the script works, not speed"
    )
    parser.add_argument("--json", metavar="PATH", help="also write the JSON record to PATH")
    parser.add_argument(
        "--threads",
        type=int,
        default=None,
        help="torch intra-op threads (default: torch's own choice); recorded in the JSON",
    )
    return parser


def add_data_arg(parser: argparse.ArgumentParser, flag: str = "--data") -> None:
    parser.add_argument(
        flag,
        default=str(DEFAULT_DATA),
        metavar="FILE",
        help="PKU-SafeRLHF v0 rows (default: ../shared/data/c2_eval_pku_saferlhf_test500.jsonl "
        "relative to the repository root)",
    )


def require_data(path: str, flag: str = "--data") -> str:
    """The data file, or exit 2 with one line saying how to pass it."""
    if not Path(path).is_file():
        print(
            f"error: data file {path} not found: pass {flag} <PKU-SafeRLHF v0 jsonl/json/parquet> "
            "(the benchmarks use the C²-EVAL rows at ../shared/data/ by default)",
            file=sys.stderr,
        )
        sys.exit(2)
    return path


def set_threads(threads: int | None) -> None:
    if threads is not None:
        import torch

        torch.set_num_threads(threads)


def warm_up(model_path: str, *modules: str) -> float:
    """Load the model once (untimed) and import ``modules``, so no side pays the cold start.

    The first load reads the weights from disk and imports transformers' model code; later
    loads hit the page cache. Without this, whichever side runs first looks seconds slower.
    """
    import importlib

    with Stopwatch() as sw:
        from transformers import AutoModelForCausalLM, AutoTokenizer

        for name in modules:
            importlib.import_module(name)
        AutoTokenizer.from_pretrained(model_path)
        AutoModelForCausalLM.from_pretrained(model_path)  # dropped at once
    return sw.seconds


def run_c2_eval(
    model_path: str, data: str, rows: int, *, batch_size: int, device: str, **evaluate: Any
) -> tuple[dict[str, Any], Any]:
    """lm-eval's run of the c2_eval group with the rule judge, as ``c2-eval --model hf`` runs it
    (only our task folder indexed, chat template, samples logged); ``evaluate`` goes to
    ``simple_evaluate``. Returns (results, the HFLM)."""
    from lm_eval import simple_evaluate
    from lm_eval.models.huggingface import HFLM
    from lm_eval.tasks import TaskManager

    from cc_tasks import TASK_DIR

    lm = HFLM(pretrained=model_path, batch_size=batch_size, device=device)  # as lm-eval --model hf
    manager = TaskManager(
        include_path=str(TASK_DIR),
        include_defaults=False,  # as c2-eval does: only our task folder is indexed
        metadata={"data": data, "judge": "rule"},
    )
    results = simple_evaluate(
        model=lm,
        tasks=["c2_eval"],
        limit=rows,
        apply_chat_template=True,
        log_samples=True,
        task_manager=manager,
        bootstrap_iters=0,
        **evaluate,
    )
    assert results is not None
    return results, lm


# ---------------------------------------------------------------- machine record


def _cpu_model() -> str | None:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.lower().startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or None


def _mem_total_gib() -> float | None:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return round(int(line.split()[1]) / 2**20, 1)
    except OSError:
        pass
    return None


def machine() -> dict[str, Any]:
    """What the numbers were measured on (CPU, memory, load, library versions, threads, GPU)."""
    import importlib.metadata as md

    info: dict[str, Any] = {
        "cpu_model": _cpu_model(),
        "cpu_count": os.cpu_count(),
        "cpus_usable": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None,
        "mem_total_gib": _mem_total_gib(),
        "loadavg_1_5_15": [round(x, 2) for x in os.getloadavg()],
        "platform": platform.platform(),
        "python": platform.python_version(),
        "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS"),
    }
    for name in ("torch", "transformers", "lm_eval", "trl", "peft", "accelerate", "openai"):
        try:
            info[name] = md.version(name)
        except md.PackageNotFoundError:
            info[name] = None
    if "torch" in sys.modules:
        import torch

        info["torch_threads"] = torch.get_num_threads()
        info["gpu"] = torch.cuda.get_device_name(0) if torch.cuda.is_available() else None
    return info


def machine_line(info: dict[str, Any]) -> str:
    load = ", ".join(str(x) for x in info["loadavg_1_5_15"])
    gpu = f", GPU {info['gpu']}" if info.get("gpu") else ""
    threads = f", torch threads {info['torch_threads']}" if "torch_threads" in info else ""
    return (
        f"machine: {info['cpu_model']} x{info['cpus_usable'] or info['cpu_count']}, "
        f"{info['mem_total_gib']} GiB{gpu}{threads}, load average {load}; "
        f"torch {info['torch']}, transformers {info['transformers']}"
    )


# ---------------------------------------------------------------- timing and output


class Stopwatch:
    """``with Stopwatch() as sw: ...`` then ``sw.seconds`` (wall clock, perf_counter)."""

    def __enter__(self) -> Stopwatch:
        self.start = time.perf_counter()
        self.seconds = 0.0
        return self

    def __exit__(self, *exc: object) -> None:
        self.seconds = time.perf_counter() - self.start


def ratio(baseline: float, ours: float) -> float | None:
    """How many times faster ours is (baseline seconds / our seconds)."""
    return round(baseline / ours, 3) if ours > 0 else None


def add_speedups(sides: list[dict[str, Any]]) -> None:
    """Give each side its wall and tokens/s speed-up against the last side (the reference)."""
    ref = sides[-1]
    for side in sides:
        side["speedup_wall"] = ratio(ref["seconds"], side["seconds"])
        side["speedup_tokens_per_s"] = (
            round(side["tokens_per_s"] / ref["tokens_per_s"], 3) if ref["tokens_per_s"] else None
        )


def per_second(count: float, seconds: float) -> float | None:
    return round(count / seconds, 3) if seconds > 0 else None


def table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    """A markdown table (paste-able into the README)."""

    def cell(value: Any) -> str:
        if value is None:
            return "-"
        if isinstance(value, float):
            return f"{value:,.3g}" if abs(value) < 100 else f"{value:,.1f}"
        if isinstance(value, int):
            return f"{value:,}"
        return str(value)

    lines = ["| " + " | ".join(headers) + " |", "|" + "|".join(" --- " for _ in headers) + "|"]
    lines += ["| " + " | ".join(cell(v) for v in row) + " |" for row in rows]
    return "\n".join(lines)


def emit(record: dict[str, Any], json_path: str | None) -> None:
    """Print the record as one JSON line (the last line of the output); optionally write it."""
    line = json.dumps(record, ensure_ascii=False, sort_keys=False)
    if json_path:
        Path(json_path).parent.mkdir(parents=True, exist_ok=True)
        Path(json_path).write_text(line + "\n", encoding="utf-8")
    print(line, flush=True)


def finish(args: argparse.Namespace, info: dict[str, Any], record: dict[str, Any]) -> int:
    """The end of every benchmark's ``main``: the record with the machine it ran on and whether
    it was ``--quick``, as the last line (and ``--json``); returns the exit code, 0."""
    emit({**record, "machine": info, "quick": args.quick}, args.json)
    return 0


def header(title: str, info: dict[str, Any]) -> None:
    print(f"\n== {title}\n{machine_line(info)}", flush=True)


# ---------------------------------------------------------------- loopback OpenAI server


class _OpenAIHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, as real endpoints do

    def log_message(self, format: str, *args: Any) -> None:  # quiet
        pass

    def _send(self, code: int, body: dict[str, Any]) -> None:
        data = json.dumps(body).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self) -> None:
        path, _, query = self.path.partition("?")
        if path.rstrip("/").endswith("/stats"):
            srv = self.server
            with srv.lock:  # type: ignore[attr-defined]
                stats = {"requests": srv.requests, "max_in_flight": srv.max_in_flight}  # type: ignore[attr-defined]
                if query == "reset":  # start a new peak (one per measured side)
                    srv.max_in_flight = srv.in_flight  # type: ignore[attr-defined]
            self._send(200, stats)
        else:
            self._send(404, {"error": {"message": "not found"}})

    def do_POST(self) -> None:
        srv = self.server
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        if not self.path.rstrip("/").endswith("/chat/completions"):
            self._send(404, {"error": {"message": f"no route {self.path}"}})
            return
        with srv.lock:  # type: ignore[attr-defined]
            srv.requests += 1  # type: ignore[attr-defined]
            srv.in_flight += 1  # type: ignore[attr-defined]
            srv.max_in_flight = max(srv.max_in_flight, srv.in_flight)  # type: ignore[attr-defined]
        try:
            time.sleep(srv.latency)  # type: ignore[attr-defined]
            request = json.loads(body or b"{}")
            # a stable yes/no per prompt: the same item gets the same answer from every client
            prompt = json.dumps(request.get("messages"), sort_keys=True).encode()
            answer = "yes" if hashlib.sha256(prompt).digest()[0] % 2 else "no"
            self._send(
                200,
                {
                    "id": "chatcmpl-bench",
                    "object": "chat.completion",
                    "created": int(time.time()),
                    "model": request.get("model", "bench"),
                    "choices": [
                        {
                            "index": 0,
                            "message": {"role": "assistant", "content": answer},
                            "finish_reason": "stop",
                        }
                    ],
                    "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2},
                },
            )
        finally:
            with srv.lock:  # type: ignore[attr-defined]
                srv.in_flight -= 1  # type: ignore[attr-defined]


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 1024  # the default backlog (5) drops connections of a 128-wide burst


def serve_openai(latency: float) -> None:
    """Run the server in this process; print its port; serve until killed."""
    srv = _Server(("127.0.0.1", 0), _OpenAIHandler)
    srv.latency = latency  # type: ignore[attr-defined]
    srv.lock = threading.Lock()  # type: ignore[attr-defined]
    srv.requests = srv.in_flight = srv.max_in_flight = 0  # type: ignore[attr-defined]
    print(srv.server_address[1], flush=True)
    srv.serve_forever()


class LoopbackOpenAI:
    """Handle of a server process: ``base_url`` and :meth:`stats`."""

    def __init__(self, proc: subprocess.Popen[str], port: int) -> None:
        self.proc = proc
        self.base_url = f"http://127.0.0.1:{port}/v1"

    def stats(self, reset: bool = False) -> dict[str, int]:
        """Requests answered so far and the most held at once (since the last ``reset``)."""
        import urllib.request

        url = self.base_url + "/stats" + ("?reset" if reset else "")
        with urllib.request.urlopen(url, timeout=10) as response:
            return json.loads(response.read())


@contextmanager
def loopback_openai(latency: float) -> Iterator[LoopbackOpenAI]:
    """Start the server in a child process for the duration of the block."""
    proc = subprocess.Popen(
        [sys.executable, str(Path(__file__).resolve()), "serve-openai", "--latency", str(latency)],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        port = int(proc.stdout.readline().strip())
        yield LoopbackOpenAI(proc, port)
    finally:
        proc.terminate()
        proc.wait(timeout=10)


if __name__ == "__main__":
    cli = argparse.ArgumentParser(description="benchmark helpers")
    sub = cli.add_subparsers(dest="command", required=True)
    serve = sub.add_parser("serve-openai", help="loopback OpenAI-compatible chat server")
    serve.add_argument("--latency", type=float, default=0.1, help="seconds per request")
    args = cli.parse_args()
    serve_openai(args.latency)
