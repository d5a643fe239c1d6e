"""Weight interpolation toward the base generator (a lab experiment; ``assemble --base --alpha``)."""

import torch

from univigu.models import UniViGUTransformer


def interpolate_shared(tuned: UniViGUTransformer, base: UniViGUTransformer, alpha: float) -> UniViGUTransformer:
    """Move the weights the video and the text share back toward the base generator (WiSE-FT, Wortsman et
    al. 2022): each becomes ``alpha * tuned + (1 - alpha) * base``; the text stream's own weights
    (:meth:`UniViGUTransformer.is_text_own`) stay ``tuned``'s. ``alpha = 1`` is ``tuned`` unchanged."""
    if not 0.0 <= alpha <= 1.0:
        raise ValueError(f"alpha must be within [0, 1], got {alpha}")
    mine, theirs = tuned.state_dict(), base.state_dict()
    shared = [n for n in mine if not UniViGUTransformer.is_text_own(n)]
    wrong = [n for n in shared if n not in theirs or theirs[n].shape != mine[n].shape]
    if wrong:
        raise ValueError(
            f"the base generator does not match the transformer ({len(wrong)} shared weights missing or of "
            f"another shape, e.g. {wrong[0]}): pass the generator this transformer was trained from"
        )
    with torch.no_grad():
        for n in shared:
            mine[n].copy_(alpha * mine[n] + (1.0 - alpha) * theirs[n])
    return tuned
