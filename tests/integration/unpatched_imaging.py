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


def misfit(name: str) -> None:
    table = []
    for patch in patches.PATCHES:
        if patch.name == name:
            first, *rest = patch.expects
            gone = dataclasses.replace(first, target=first.target + "_renamed")
            patch = dataclasses.replace(patch, expects=(gone, *rest))
        table.append(patch)
    if table == list(patches.PATCHES):
        raise SystemExit(f"no patch named {name!r}")
    patches.PATCHES = tuple(table)


if __name__ == "__main__":
    misfit(os.environ["PROCTRAIL_TEST_MISFIT_PATCH"])
    main()
