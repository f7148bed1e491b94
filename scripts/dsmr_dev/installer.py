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

Nothing is skipped: if something cannot be installed, the caller fails with the reason.
"""

from __future__ import annotations

import contextlib
import ctypes.util
import importlib.metadata
import json
import os
from pathlib import Path
import re
import shutil
import subprocess
import sys

import homeassistant

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
COMPONENTS = Path(homeassistant.__file__).parent / "components"


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


def pip_install(*requirements: str) -> None:
    """`pip install` into the running interpreter's environment."""
    _run([sys.executable, "-m", "pip", "install", "-q", *requirements], "pip install")


def manifest_requirements(domains: tuple[str, ...]) -> list[str]:
    """The pinned requirements of these integrations and their dependencies."""
    seen: set[str] = set()
    found: list[str] = []
    todo = list(domains)
    while todo:
        domain = todo.pop()
        if domain in seen:
            continue
        seen.add(domain)
        manifest = json.loads((COMPONENTS / domain / "manifest.json").read_text())
        found += [r for r in manifest.get("requirements", []) if r not in found]
        todo += manifest.get("dependencies", [])
    return found


def missing(requirements: list[str]) -> list[str]:
    """The requirements whose distribution is not installed at all (any version counts)."""
    absent = []
    for requirement in requirements:
        name = re.split(r"[\s<>=!~;\[]", requirement, maxsplit=1)[0]
        try:
            importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            absent.append(requirement)
    return absent


def ensure_requirements(domains: tuple[str, ...]) -> None:
    """pip-install what these Home Assistant integrations need and is not installed."""
    absent = missing(manifest_requirements(domains))
    if not absent:
        return
    if not shutil.which("g++"):
        # Some pins have no wheel for this Python and build from source.
        with contextlib.suppress(InstallError):
            apt_install("g++")
    pip_install(*absent)
    if still := missing(absent):
        raise InstallError(f"installed but still missing: {still}")


def ensure_frontend() -> None:
    """The `home-assistant-frontend` package at Home Assistant's pin."""
    ensure_requirements(("frontend",))


def ensure_browser() -> str:
    """Chromium, Playwright, and what the frontend needs in a browser; returns chromium's path."""
    ensure_requirements(("frontend", *SERVICE_BASE_COMPONENTS))
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
