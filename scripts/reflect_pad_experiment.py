"""An experiment for docs/quality.md (not used by the library): the `painterly` command with the encoder
seeing the image reflected at the bottom and right to a multiple of 16 px, its maps cropped back to
``feature_side`` positions, so that no position stands on a partial pool cell.

    python scripts/reflect_pad_experiment.py CONTENT STYLE --size 512 ... -o OUT.png

Untiled runs only: tiles would need their origins on multiples of 16 for their crops to be continued
as the whole image is (docs/quality.md, "speckled bottom rows")."""
import runpy, sys
import torch
from painterly.encoder import VGG19Encoder
from painterly.layers import feature_side, layer

_orig = VGG19Encoder.forward


def forward(self, image):
    h, w = image.shape[-2:]
    ph, pw = (-h) % 16, (-w) % 16
    x = torch.nn.functional.pad(image, (0, pw, 0, ph), mode="reflect") if ph or pw else image
    out = _orig(self, x)
    return {n: f[..., : feature_side(h, layer(n).stride), : feature_side(w, layer(n).stride)] for n, f in out.items()}


VGG19Encoder.forward = forward
sys.argv = ["painterly"] + sys.argv[1:]
runpy.run_module("painterly", run_name="__main__")
