"""``(void *) address`` inside numba code: how a ``cfunc`` callback (PortAudio's,
JACK's in the benchmarks) reaches arrays whose int64 addresses it was given.

Kept apart from :mod:`rtpitch.pa_stream`: importing that imports sounddevice,
which starts PortAudio (and with it a JACK client) in the importing process.
"""

from __future__ import annotations

from numba.core import cgutils, types
from numba.extending import intrinsic


@intrinsic
def pointer(typingctx, address):
    """``(void *) address``: an int64 address as a pointer for ``numba.carray``."""
    sig = types.voidptr(types.int64)

    def codegen(context, builder, signature, args):
        return builder.inttoptr(args[0], cgutils.voidptr_t)

    return sig, codegen
