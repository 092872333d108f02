"""`python -m tests.integration.unpatched_imaging`: the imaging listener, but with one of its
patches expecting a name pynetdicom does not have (as a pynetdicom release that renamed it
would), so the start-up check fails and the listener must run without any patch.

Which patch: PROCTRAIL_TEST_MISFIT_PATCH (a name in services.imaging.patches.PATCHES). Only
this test entry point reads it. Run it with one worker: workers are started as
`python -m services.imaging`, which would check the real table.
"""

from __future__ import annotations

import dataclasses
import os

from services.imaging import patches
from services.imaging.__main__ import main


def with_one_missing_name(patch_name: str) -> tuple[patches.Patch, ...]:
    """The table, with the first expectation of one patch pointed at a name nobody has (its
    name with `_renamed` added)."""
    out = []
    for patch in patches.PATCHES:
        if patch.name == patch_name:
            first, *rest = patch.expects
            moved = dataclasses.replace(first, target=first.target + "_renamed")
            patch = dataclasses.replace(patch, expects=(moved, *rest))
        out.append(patch)
    if out == list(patches.PATCHES):
        raise SystemExit(f"no patch named {patch_name!r}")
    return tuple(out)


if __name__ == "__main__":
    patches.PATCHES = with_one_missing_name(os.environ["PROCTRAIL_TEST_MISFIT_PATCH"])
    main()
