"""User-facing errors: one clear line, no traceback (the CLI catches them)."""


class UserError(Exception):
    """An expected user mistake (bad option, missing file, ...). The message names what is at fault."""


def check_values(ok: "torch.Tensor", message: str) -> None:
    """Raise UserError(message) unless every element of the bool tensor `ok` is true, without a host sync.

    A check of tensor *values* (not shapes) must read the device, which would stall a GPU's queue and break a
    compiled graph in the training step. ``torch._assert_async`` checks without a read: on a CPU it fails at once
    (turned into the UserError here), on a GPU as a device-side assert when the kernel runs, and under
    ``torch.compile`` it stays in the graph.
    """
    import torch
    if torch.compiler.is_compiling():
        torch._assert_async(ok.all(), message)
        return
    try:
        torch._assert_async(ok.all(), message)
    except RuntimeError:
        raise UserError(message) from None
