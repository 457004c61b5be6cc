"""Read caps: what an archive may expand to, checked before anything is read (zip bombs)."""

from __future__ import annotations

import os
from dataclasses import dataclass

from ...errors import (
    SourceFormatError,
    UnsafeArchiveError,
)

__all__ = [
    "READ_LIMITS",
    "ReadLimits",
]


@dataclass
class ReadLimits:
    """Caps on what an archive may expand to, checked before anything is read (zip bombs).

    A member (or the whole archive) above ``ratio_floor`` bytes once uncompressed may expand at
    most ``max_ratio`` times (refine.bio's matrices compress 3-10x; a zip bomb, 1,000x); the
    whole archive may hold at most ``max_bytes`` uncompressed. Override them with the
    environment variables ``REFINEWIDGETS_MAX_RATIO`` and ``REFINEWIDGETS_MAX_BYTES`` (0 turns a
    cap off), or by changing :data:`READ_LIMITS`.
    """

    max_ratio: float = 200.0
    max_bytes: int = 1 << 40  # 1 TiB: the largest refine.bio compendia are a few hundred GB
    ratio_floor: int = 1 << 24  # 16 MiB: smaller members cannot do harm, whatever their ratio

    @classmethod
    def from_environment(cls) -> ReadLimits:
        limits = cls()
        for name, attr, kind in (
            ("REFINEWIDGETS_MAX_RATIO", "max_ratio", float),
            ("REFINEWIDGETS_MAX_BYTES", "max_bytes", int),
        ):
            text = os.environ.get(name)
            if text:
                try:
                    setattr(limits, attr, kind(text))
                except ValueError:
                    raise SourceFormatError(
                        f"The environment variable {name}={text!r} is not a number."
                    ) from None
        return limits

    def check(self, label: str, members: list[tuple[str, int, int]]) -> None:
        """Check a zip's ``(name, uncompressed size, compressed size)`` of every member."""
        for name, size, stored in [*members, ("(the whole archive)", *_totals(members))]:
            self._ratio(label, name, size, stored)
        self._total(label, _totals(members)[0])

    def check_tar_member(self, label: str, name: str, size: int, total: int, packed: int) -> None:
        """Check one tar member (``size``) and the members so far (``total``) against the
        archive's size on disk (``packed``): a tar records no per-member compressed size."""
        self._ratio(label, name, size, packed)
        self._ratio(label, "(the whole archive)", total, packed)
        self._total(label, total)

    def _ratio(self, label: str, name: str, size: int, stored: int) -> None:
        ratio = size / max(stored, 1)
        if self.max_ratio and size > self.ratio_floor and ratio > self.max_ratio:
            raise UnsafeArchiveError(
                f"{label}: {name} would expand {ratio:,.0f} times ({stored:,} bytes to "
                f"{size:,}), above the cap of {self.max_ratio:,.0f}x: it looks like an archive "
                "bomb, so nothing was read. " + _OVERRIDE.format(var="REFINEWIDGETS_MAX_RATIO")
            )

    def _total(self, label: str, total: int) -> None:
        if self.max_bytes and total > self.max_bytes:
            raise UnsafeArchiveError(
                f"{label} would expand to {total:,} bytes, above the cap of {self.max_bytes:,}: "
                "nothing was read. " + _OVERRIDE.format(var="REFINEWIDGETS_MAX_BYTES")
            )


_OVERRIDE = (
    "If you trust this archive, raise the cap with the environment variable {var} (0 turns it off)."
)


def _totals(members: list[tuple[str, int, int]]) -> tuple[int, int]:
    return sum(m[1] for m in members), sum(m[2] for m in members)


#: The caps every archive is checked against (see :class:`ReadLimits`).
READ_LIMITS = ReadLimits.from_environment()
