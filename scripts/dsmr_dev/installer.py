"""Install what the end-to-end tests need on a fresh machine, when it is missing.

* Home Assistant always loads its `frontend`, which needs the `home-assistant-frontend`
  package; `hass --skip-pip` would not install it. Installed with pip at the version Home
  Assistant's own manifest pins.
* The browser test needs the frontend to load in a browser. Every page load asks for the
  service descriptions (`get_services`), which imports Home Assistant's base entity
  components; with `--skip-pip` their requirements may be missing (today: assist_pipeline's
  pymicro-vad and pyspeex-noise, source-only for Python 3.14, so g++ is needed to build them).
  Installed with pip at the manifests' pins.
* Chromium from Debian (`apt-get install chromium`), driven through Playwright for Python
  (`pip install playwright`: its wheel carries Playwright's driver; no browser download).
* FFmpeg and libturbojpeg from Debian, for scripts/develop: Home Assistant sets up `tts` and
  `camera` at every start (all entity platforms are default integrations since 2026.x), and
  they log a traceback each when these are missing (`tts` needs `ffmpeg`; `camera` loads
  libturbojpeg when imported). Home Assistant's own development container installs both.

Home Assistant's requirements go into the environment of the Python that runs `hass` (`python`,
this interpreter unless told otherwise: the end-to-end suite also runs `hass` from the newest
release's own venv), at the pins of that Home Assistant's manifests.

Nothing is skipped: if something cannot be installed, the caller fails with the reason.
"""

from __future__ import annotations

import contextlib
import ctypes.util
from functools import cache
import json
import os
from pathlib import Path
import re
import shutil
import subprocess
import sys

PLAYWRIGHT = "playwright==1.65.2"
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_PACKAGES = ("chromium", "fonts-liberation", "fonts-dejavu-core")
FFMPEG_PACKAGE = "ffmpeg"
TURBOJPEG_PACKAGE = "libturbojpeg0"
# What `homeassistant.helpers.service._base_components` imports (for `get_services`).
SERVICE_BASE_COMPONENTS = (
    "ai_task",
    "alarm_control_panel",
    "assist_satellite",
    "calendar",
    "camera",
    "climate",
    "cover",
    "fan",
    "humidifier",
    "light",
    "lock",
    "media_player",
    "notify",
    "remote",
    "siren",
    "todo",
    "update",
    "vacuum",
    "water_heater",
)
INSTALL_TIMEOUT = 900  # seconds, for one apt-get or pip run
# Which of the given distributions are installed (any version counts), as JSON.
_INSTALLED = """
import importlib.metadata, json, sys
found = []
for name in sys.argv[1:]:
    try:
        importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
        continue
    found.append(name)
print(json.dumps(found))
"""


class InstallError(RuntimeError):
    """Something the tests need is missing and could not be installed."""


def _run(args: list[str], what: str) -> None:
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    try:
        done = subprocess.run(
            args, capture_output=True, text=True, timeout=INSTALL_TIMEOUT, env=env, check=False
        )
    except (OSError, subprocess.TimeoutExpired) as err:
        raise InstallError(f"{what}: {' '.join(args)}: {err}") from err
    if done.returncode != 0:
        raise InstallError(
            f"{what}: {' '.join(args)} exited with {done.returncode}:\n"
            f"{(done.stdout + done.stderr)[-3000:]}"
        )


def apt_install(*packages: str) -> None:
    """`apt-get install` (as root, on Debian); refreshes the package lists if needed."""
    if not shutil.which("apt-get"):
        raise InstallError(f"need {', '.join(packages)}, and there is no apt-get to install it")
    if os.geteuid() != 0:
        raise InstallError(f"need {', '.join(packages)}: install it, or run as root")
    install = ["apt-get", "install", "-y", "-q", "--no-install-recommends", *packages]
    try:
        _run(install, "apt-get install")
    except InstallError:
        # Old or missing lists; a mirror snapshot's Release file may be past its Valid-Until.
        _run(
            ["apt-get", "-o", "Acquire::Check-Valid-Until=false", "update", "-q"], "apt-get update"
        )
        _run(install, "apt-get install")
    # The downloaded .deb files are not needed once installed (Chromium's alone: ~0.5 GB).
    with contextlib.suppress(InstallError):
        _run(["apt-get", "clean"], "apt-get clean")


def pip_install(*requirements: str, python: str = sys.executable) -> None:
    """`pip install` into the environment of `python`."""
    _run([python, "-m", "pip", "install", "-q", *requirements], "pip install")


def _ask(python: str, code: str, *args: str) -> str:
    """What `python -c code args...` prints (a question to another environment)."""
    done = subprocess.run(
        [python, "-c", code, *args], capture_output=True, text=True, timeout=120, check=False
    )
    if done.returncode != 0:
        raise InstallError(f"{python} -c {code.strip()[:60]!r}...:\n{done.stderr[-2000:]}")
    return done.stdout


@cache
def components(python: str = sys.executable) -> Path:
    """The `homeassistant/components` folder of the Home Assistant that `python` imports."""
    found = _ask(python, "import homeassistant; print(homeassistant.__file__)")
    return Path(found.strip()).parent / "components"


def manifest_requirements(domains: tuple[str, ...], python: str = sys.executable) -> list[str]:
    """The pinned requirements of these integrations and of what they (after-)depend on.

    Home Assistant installs the requirements of `after_dependencies` too, so that their modules
    can be imported (2026.11's usb imports hassio, an after-dependency).
    """
    seen: set[str] = set()
    found: list[str] = []
    todo = list(domains)
    while todo:
        domain = todo.pop()
        if domain in seen:
            continue
        seen.add(domain)
        manifest = json.loads((components(python) / domain / "manifest.json").read_text())
        found += [r for r in manifest.get("requirements", []) if r not in found]
        todo += manifest.get("dependencies", []) + manifest.get("after_dependencies", [])
    return found


def missing(requirements: list[str], python: str = sys.executable) -> list[str]:
    """The requirements whose distribution `python` does not have at all (any version counts)."""
    names = {r: re.split(r"[\s<>=!~;\[]", r, maxsplit=1)[0] for r in requirements}
    installed = set(json.loads(_ask(python, _INSTALLED, *names.values())))
    return [r for r, name in names.items() if name not in installed]


def ensure_requirements(domains: tuple[str, ...], python: str = sys.executable) -> None:
    """pip-install what these Home Assistant integrations need and `python` does not have."""
    absent = missing(manifest_requirements(domains, python), python)
    if not absent:
        return
    if not shutil.which("g++"):
        # Some pins have no wheel for this Python and build from source.
        with contextlib.suppress(InstallError):
            apt_install("g++")
    pip_install(*absent, python=python)
    if still := missing(absent, python):
        raise InstallError(f"installed but still missing: {still}")


def ensure_browser(python: str = sys.executable) -> str:
    """Chromium, Playwright, and what the frontend needs in a browser; returns chromium's path.

    Home Assistant's requirements go to `python` (the one running `hass`); Playwright, which
    the test drives, to this interpreter.
    """
    ensure_requirements(("frontend", *SERVICE_BASE_COMPONENTS), python)
    if not Path(CHROMIUM).exists():
        apt_install(*CHROMIUM_PACKAGES)
    if not Path(CHROMIUM).exists():
        raise InstallError(f"apt-get installed chromium, but there is no {CHROMIUM}")
    if missing([PLAYWRIGHT]):
        pip_install(PLAYWRIGHT)
    return CHROMIUM


def ensure_media_tools() -> None:
    """`ffmpeg` and libturbojpeg, which Home Assistant's `tts` and `camera` look for."""
    needed = [FFMPEG_PACKAGE] if shutil.which("ffmpeg") is None else []
    if ctypes.util.find_library("turbojpeg") is None:
        needed.append(TURBOJPEG_PACKAGE)
    if needed:
        apt_install(*needed)
