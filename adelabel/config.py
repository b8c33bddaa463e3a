"""Run configuration: a TOML file of plain values, overridden by command-line flags."""
from __future__ import annotations

import copy
import json
import tomllib
from pathlib import Path

from adelabel.errors import AdelabelError, InputError

CONFIG_DIR = Path(__file__).resolve().parent.parent / "configs"


def default_config_path(arch: str) -> Path:
    return CONFIG_DIR / f"{arch}.toml"


def load_config(arch: str | None = None, path: str | Path | None = None) -> dict:
    """The config in ``path``, or the defaults for ``arch`` from ``configs/ARCH.toml``."""
    if path is None:
        if arch is None:
            raise AdelabelError("give --arch or --config")
        path = default_config_path(arch)
        if not path.is_file():
            known = sorted(p.stem for p in CONFIG_DIR.glob("*.toml"))
            raise AdelabelError(f"no default config for architecture {arch!r} ({path}); known: {', '.join(known)}")
    path = Path(path)
    if not path.is_file():
        raise InputError(path, "config file not found")
    try:
        config = tomllib.loads(path.read_text(encoding="utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as err:
        raise InputError(path, f"not valid TOML ({err})") from None
    if arch is not None and config.get("arch", arch) != arch:
        raise InputError(path, f"config is for arch {config['arch']!r}, not {arch!r}")
    config.setdefault("arch", arch)
    for section in ("model", "train"):
        config.setdefault(section, {})
    return config


def apply_overrides(config: dict, overrides: list[str]) -> dict:
    """Return a copy of ``config`` with ``section.key=value`` overrides; values are parsed as JSON when
    they can be (numbers, true/false), else kept as strings."""
    config = copy.deepcopy(config)
    for item in overrides:
        key, sep, raw = item.partition("=")
        if not sep or not key:
            raise AdelabelError(f"override {item!r} is not KEY=VALUE (for example train.lr=0.002)")
        try:
            value = json.loads(raw)
        except ValueError:
            value = raw
        *parents, leaf = key.split(".")
        node = config
        for part in parents:
            node = node.setdefault(part, {})
            if not isinstance(node, dict):
                raise AdelabelError(f"override {item!r}: {part!r} is not a section")
        node[leaf] = value
    return config
