"""The library versions the training code was tested against, checked when training starts.

The shared-response trainer (:mod:`cc_train.shared_dpo`) overrides private TRL and
transformers methods (``_compute_loss``, ``_precompute_ref_logps``, ``_get_dataloader``,
``_run_epoch``) and reads ``trl.trainer.utils`` helpers and datasets' ``_fingerprint``; any
minor release may rename them. ``pyproject.toml`` pins the same ranges; this check names them
at start, so a drifted environment fails with one line instead of an ``AttributeError`` hours
into a run. Stock DPO (``group_by_request: false``) uses only public APIs: outside the range
it gets a warning, the shared trainer a refusal.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from importlib import metadata

from packaging.version import Version

from .recipe import RecipeError

# name: (lowest tested, first release NOT vouched for) -- keep in step with pyproject.toml
TESTED: dict[str, tuple[str, str]] = {
    "trl": ("1.16", "1.17"),
    "transformers": ("5.24", "5.26"),
    "accelerate": ("1.15", "1.17"),
    "peft": ("0.21", "0.22"),
    "datasets": ("5.2", "5.3"),
    "torch": ("2.11", "2.14"),
}


class VersionWarning(UserWarning):
    """A training library outside the tested range (stock DPO: public APIs only, may work)."""


@dataclass(frozen=True)
class Drift:
    """One installed library outside its tested range."""

    name: str
    installed: str | None
    low: str
    high: str

    def __str__(self) -> str:
        found = self.installed or "not installed"
        return f"{self.name} {found} (tested: >={self.low},<{self.high})"


def installed_version(name: str) -> str | None:
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return None


def version_drift(installed: dict[str, str | None] | None = None) -> list[Drift]:
    """The libraries whose installed version lies outside :data:`TESTED` (empty: all tested).

    ``installed`` maps name -> version (default: what this environment has installed).
    """
    found = installed if installed is not None else {n: installed_version(n) for n in TESTED}
    drift = []
    for name, (low, high) in TESTED.items():
        version = found.get(name)
        release = Version(version).release if version else None
        if release is None or not (Version(low).release <= release < Version(high).release):
            drift.append(Drift(name, version, low, high))
    return drift


def check_versions(*, shared: bool, installed: dict[str, str | None] | None = None) -> None:
    """Refuse the shared trainer outside the tested versions; warn for stock DPO.

    Raises :class:`RecipeError` (one line, exit code 2, before any weights load) naming
    every drifted library and its tested range.
    """
    drift = version_drift(installed)
    if not drift:
        return
    listed = "; ".join(str(d) for d in drift)
    if shared:
        raise RecipeError(
            f"group_by_request (cc_train.shared_dpo overrides private TRL/transformers "
            f"methods) is tested only with the pinned versions: {listed}. Install them "
            "(pip install -e .) or train stock DPO with --group_by_request false"
        )
    warnings.warn(
        f"untested training library versions: {listed}; stock DPO uses public APIs only",
        VersionWarning,
        stacklevel=2,
    )


__all__ = ["TESTED", "Drift", "VersionWarning", "check_versions", "version_drift"]
