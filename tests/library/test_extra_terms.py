"""A run's own loss terms (``StyleTransfer.start(..., extra_terms=[...])``, the Term protocol): what
docs/architecture.md tells a newcomer to write, checked where it goes wrong, and kept on resume."""

from __future__ import annotations

import io
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Mapping

import pytest
import torch
from torch import Tensor

from painterly.encoder import random_state
from painterly.engine import Objective, Run, StyleTransfer, TVTerm, build_encoder
from painterly.errors import ConfigError
from painterly.weights import Weights

pytestmark = pytest.mark.usefixtures("single_thread")


@dataclass(frozen=True)
class MeanColourTerm:
    """``weight × ‖mean colour of the image − target‖²``, the example of docs/architecture.md."""

    target: Tensor  # (3,) in [0, 1]
    weight: float
    name: str = "mean_colour"
    layers: tuple[str, ...] = ()

    def __call__(self, image: Tensor, features: Mapping[str, Tensor]) -> Tensor:
        return (image.mean(dim=(0, 2, 3)) - self.target.to(image)).pow(2).sum() * self.weight


@dataclass(frozen=True)
class LayerMean:
    """A term reading one encoder layer."""

    layer: str
    name: str = "layer_mean"
    weight: float = 1.0

    @property
    def layers(self) -> tuple[str, ...]:
        return (self.layer,)

    def __call__(self, image: Tensor, features: Mapping[str, Tensor]) -> Tensor:
        return features[self.layer].float().mean() * self.weight


RED = torch.tensor([0.9, 0.1, 0.1])


def test_the_documented_example_term_runs_and_pulls_the_colour(images, tiny_config, tiny_transfer):
    transfer = tiny_transfer(tiny_config(iterations=6))
    # 1e7: at 1e5 the term moved the mean colour by 0.1 % in these 6 steps (0.5491 vs 0.5500 from RED),
    # so any change to the other terms could flip the comparison; at 1e7 it pulls ~10 % closer.
    run = transfer.start(images.content_t, [images.style_t], extra_terms=[MeanColourTerm(RED, 1e7)])
    last = list(run)[-1]
    plain = transfer.start(images.content_t, [images.style_t])
    list(plain)
    assert list(last.losses) == ["total", "content", "style", "tv", "mean_colour"]
    assert last.losses["total"] == pytest.approx(sum(v for k, v in last.losses.items() if k != "total"), rel=1e-5)
    distance = lambda image: (image.mean(dim=(0, 2, 3)) - RED).norm().item()  # noqa: E731
    assert distance(run.result()) < distance(plain.result())


def test_run_to_the_end_takes_extra_terms_too(images, tiny_config, tiny_transfer):
    transfer = tiny_transfer(tiny_config(iterations=3))
    term = MeanColourTerm(RED, 1e5)
    run = transfer.start(images.content_t, [images.style_t], extra_terms=[term])
    list(run)
    assert torch.equal(transfer.run(images.content_t, [images.style_t], extra_terms=[term]), run.result())


def test_the_example_term_gradchecks_in_float64():
    term = MeanColourTerm(RED.double(), 2.0)
    x = torch.rand(1, 3, 6, 5, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda image: term(image, {}), (x,))


def test_a_resumed_run_keeps_its_extra_terms_when_given_again(images, tiny_config, tiny_transfer):
    cfg = tiny_config(iterations=6)
    term = MeanColourTerm(RED, 1e5)
    straight = tiny_transfer(cfg).start(images.content_t, [images.style_t], extra_terms=[term])
    reference = [p.losses for p in straight]
    first = tiny_transfer(cfg).start(images.content_t, [images.style_t], extra_terms=[term])
    first.step(), first.step()
    buffer = io.BytesIO()
    torch.save(first.state_dict(), buffer)
    buffer.seek(0)
    resumed = Run.from_state_dict(tiny_transfer(cfg), torch.load(buffer, weights_only=True), extra_terms=[term])
    assert [p.losses for p in resumed] == reference[2:]
    assert torch.equal(resumed.result(), straight.result())


def test_resuming_without_the_runs_extra_terms_is_refused(images, tiny_config, tiny_transfer):
    """It used to continue without them, silently optimising another objective."""
    transfer = tiny_transfer(tiny_config(iterations=4))
    run = transfer.start(images.content_t, [images.style_t], extra_terms=[MeanColourTerm(RED, 1e5)])
    run.step()
    state = run.state_dict()
    assert state["extra_terms"] == ["mean_colour"]
    with pytest.raises(ConfigError, match="the checkpoint's run had the extra term 'mean_colour': give it again"):
        Run.from_state_dict(transfer, state)
    assert "extra_terms" not in transfer.start(images.content_t, [images.style_t]).state_dict()


def test_a_term_named_like_another_is_refused_not_silently_replacing_it(images, tiny_config, tiny_transfer):
    """An extra term named ``style`` used to replace the style loss in the sum without a word."""
    transfer = tiny_transfer(tiny_config())
    for terms, name in (([MeanColourTerm(RED, 1.0, name="style")], "style"), ([MeanColourTerm(RED, 1.0)] * 2, "mean_colour")):
        with pytest.raises(ConfigError, match=f"extra term '{name}': another term reports under that name"):
            transfer.start(images.content_t, [images.style_t], extra_terms=terms)
    # A style kind's own term (histogram) is known only when the level's objective is built.
    histogram = tiny_transfer(tiny_config(style_loss="histogram"))
    run = histogram.start(images.content_t, [images.style_t], extra_terms=[MeanColourTerm(RED, 1.0, name="histogram")])
    with pytest.raises(ConfigError, match="two loss terms report as 'histogram'"):
        run.step()
    with pytest.raises(ConfigError, match="two loss terms report as 'mean_colour'"):
        Objective(transfer.encoder, [MeanColourTerm(RED, 1.0), MeanColourTerm(RED, 2.0)])
    with pytest.raises(ConfigError, match="'total'"):
        Objective(transfer.encoder, [MeanColourTerm(RED, 1.0, name="total")])


def test_a_term_reading_a_layer_the_encoder_lacks_is_refused_at_start(images, tiny_config, tiny_transfer):
    transfer = tiny_transfer(tiny_config())
    assert "relu5_4" not in transfer.encoder.layers
    with pytest.raises(ConfigError, match="extra term 'layer_mean' reads relu5_4, which the encoder does not output"):
        transfer.start(images.content_t, [images.style_t], extra_terms=[LayerMean("relu5_4")])


def test_an_encoder_built_with_extra_layers_serves_the_term(images, tiny_config):
    config = tiny_config()
    encoder = build_encoder(config, weights=Weights(random_state(), "caffe", "tiny"), extra_layers=("relu5_4", config.layers_needed[0]))
    assert encoder.layers == (*config.layers_needed, "relu5_4")
    run = StyleTransfer(config, encoder=encoder).start(images.content_t, [images.style_t], extra_terms=[LayerMean("relu5_4")])
    assert run.step().losses["layer_mean"] > 0


def test_the_term_of_docs_architecture_is_the_one_tested_here():
    """The doc's example class, run as written: it must define the term these tests use."""
    text = (Path(__file__).resolve().parents[2] / "docs" / "architecture.md").read_text(encoding="utf-8")
    section = text.split("### A loss term of your own", 1)[1]
    code = re.search(r"```python\n(.*?)```", section, re.S).group(1)
    scope: dict = {}
    exec(compile(code, "docs/architecture.md", "exec"), scope)  # noqa: S102 - our own documentation
    term = scope["MeanColourTerm"](RED, 3.0)
    x = torch.rand(1, 3, 8, 8)
    assert (term.name, term.layers) == ("mean_colour", ())
    assert torch.equal(term(x, {}), MeanColourTerm(RED, 3.0)(x, {}))


@pytest.mark.parametrize(
    "terms, words",
    [
        (TVTerm(1.0), "extra_terms must be a list of loss terms, got TVTerm"),
        ([lambda image, features: image.sum()], "a term is callable as term"),
        ([MeanColourTerm(RED, 1.0, name="")], "a term is callable as term"),
        ([LayerMean], "extra term LayerMean: give an instance of the class, not the class"),
    ],
)
def test_something_that_is_not_a_list_of_terms_is_refused_at_start(terms, words, images, tiny_config, tiny_transfer):
    transfer = tiny_transfer(tiny_config())
    with pytest.raises(ConfigError, match=words):
        transfer.start(images.content_t, [images.style_t], extra_terms=terms)
