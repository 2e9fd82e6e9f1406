"""The job list of a batch: which content goes with which styles and settings, and what each result is
called.

A job list comes from contents and styles given as files, folders or globs (:func:`expand_paths`),
combined as a product (every content in every style) or paired (the i-th content with the i-th style),
times every combination of swept values (``style_weight=50,100,200``, :func:`parse_sweep`); or from a
manifest file of JSON lines or YAML (:func:`read_job_file`). Nothing here reads an image or runs anything.
"""

from __future__ import annotations

import dataclasses
import glob
import hashlib
import itertools
import json
import os
import re
import unicodedata
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence

from ..config import Config
from ..errors import ConfigError, shown

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".webp", ".bmp", ".tif", ".tiff")


@dataclass(frozen=True)
class Job:
    """One image to make.

    Attributes:
        content: the photo's path.
        styles: the paintings' paths (several are blended).
        options: Config fields this job sets over the batch's own (a sweep's values, a manifest line's).
        output: the result's file name, inside the batch's folder.
        row: the contact sheet's row label (the content).
        column: the contact sheet's column label (the styles and swept values).
    """

    content: str
    styles: tuple[str, ...]
    options: Mapping[str, Any] = field(default_factory=dict)
    output: str = ""
    row: str = ""
    column: str = ""

    def config(self, base: Mapping[str, Any]) -> Config:
        """The job's settings: ``stylize``'s defaults, then ``base`` (the batch's options), then its own."""
        return Config.for_mode("stylize", **{**base, **self.options})

    @property
    def inputs(self) -> tuple[str, ...]:
        return (self.content, *self.styles)


def expand_paths(specs: Iterable[str], what: str) -> list[str]:
    """Files, folders (their images, sorted) and globs → image paths, in order, each once.

    Raises:
        ConfigError: a spec that names nothing.
    """
    out: list[str] = []
    batches: dict[Path, set[str]] = {}
    for spec in specs:
        path = Path(spec)
        if path.is_dir():
            found = sorted(str(p) for p in path.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
            found = [p for p in found if Path(p).name not in _batch_files(Path(p).parent, batches)]
        elif any(ch in spec for ch in "*?["):
            found = sorted(p for p in glob.glob(spec, recursive=True) if Path(p).is_file())
            found = [p for p in found if Path(p).name not in _batch_files(Path(p).parent, batches)]
        else:
            found = [spec]  # a file: a missing one is reported with the other bad inputs
        if not found:
            raise ConfigError(f"{what} {spec}: names no image files")
        # The same file spelt two ways (photos/a.jpg, ./photos/a.jpg) is one input.
        known = {os.path.realpath(p) for p in out}
        for p in found:
            if os.path.realpath(p) not in known:
                known.add(os.path.realpath(p))
                out.append(p)
    return out


def _batch_files(folder: Path, known: dict[Path, set[str]]) -> set[str]:
    """The names of a batch's own files in ``folder`` (the results its manifest records, and the
    contact sheet), read once per folder: a folder or glob of photos that is also a batch's ``-o``
    does not take them as inputs (a re-run of the same command would find them there)."""
    from .manifest import MANIFEST_NAME, read_manifest
    from .sheet import SHEET_NAME

    if folder not in known:
        known[folder] = {SHEET_NAME, *read_manifest(folder)} if (folder / MANIFEST_NAME).is_file() else set()
    return known[folder]


def parse_value(text: str) -> Any:
    """A swept value as typed: an integer, a number, on/off, or the text itself."""
    for kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            pass
    return {"on": True, "true": True, "off": False, "false": False}.get(text.lower(), text)


def parse_sweep(spec: str) -> tuple[str, tuple[Any, ...]]:
    """``"style_weight=50,100,200"`` (or ``style-weight=...``) → ``("style_weight", (50, 100, 200))``."""
    name, sep, values = spec.partition("=")
    name = name.strip().replace("-", "_")
    if not sep or not values.strip():
        raise ConfigError(f"`sweep` {shown(spec)}: write it as FIELD=V1,V2,... (e.g. style_weight=50,100,200)")
    if name not in {f.name for f in dataclasses.fields(Config)}:
        raise ConfigError(f"`sweep` {shown(spec)}: unknown option {shown(name)}")
    # A value given twice is one column (it would make the very same image twice).
    return name, tuple(dict.fromkeys(parse_value(v.strip()) for v in values.split(",") if v.strip()))


def _stem(path: str) -> str:
    """A file's stem for output names and labels, in ASCII (the sheet's font has no other letters):
    accents dropped (``café`` → ``cafe``); a stem with letters that have no ASCII form (``東京``) gets
    a short hash of itself, so that two such names do not become the same one."""
    stem = Path(path).stem
    bare = "".join(c for c in unicodedata.normalize("NFKD", stem) if not unicodedata.combining(c))
    out = re.sub(r"[^A-Za-z0-9._-]+", "-", bare).strip("-")
    if not bare.isascii():
        digest = hashlib.sha256(unicodedata.normalize("NFC", stem).encode("utf-8")).hexdigest()[:6]
        out = f"{out or 'image'}-{digest}"
    return out or "image"


def _value_text(value: Any) -> str:
    if isinstance(value, bool):
        return "on" if value else "off"
    if isinstance(value, (list, tuple)):
        return "+".join(map(str, value))
    return re.sub(r"[^A-Za-z0-9.+-]+", "-", str(value))


def job_name(content: str, styles: Sequence[str], swept: Mapping[str, Any], suffix: str = ".png") -> str:
    """The output name that says what the image is: ``photo__starry_night__style_weight-100.png``."""
    parts = [_stem(content), "+".join(_stem(s) for s in styles)]
    parts += [f"{k}-{_value_text(v)}" for k, v in swept.items()]
    return "__".join(parts) + suffix


def build_jobs(
    contents: Sequence[str],
    styles: Sequence[str],
    *,
    paired: bool = False,
    sweeps: Sequence[tuple[str, Sequence[Any]]] = (),
    suffix: str = ".png",
) -> list[Job]:
    """Every content in every style (or paired in order), times every combination of swept values."""
    if paired and len(contents) != len(styles):
        raise ConfigError(f"`paired` needs as many contents as styles, got {len(contents)} and {len(styles)}")
    pairs = list(zip(contents, styles)) if paired else list(itertools.product(contents, styles))
    names = [name for name, _ in sweeps]
    combos = list(itertools.product(*(values for _, values in sweeps))) or [()]
    jobs = []
    for content, style in pairs:
        for combo in combos:
            swept = dict(zip(names, combo))
            column = " ".join([_stem(style), *(f"{k}={_value_text(v)}" for k, v in swept.items())])
            jobs.append(Job(content, (style,), swept, job_name(content, (style,), swept, suffix), _stem(content), column))
    return check_unique(jobs)


YAML_SUFFIXES = (".yaml", ".yml")
YAML_HINT = "reading a YAML job file needs PyYAML, which is not installed: pip install pyyaml"
KEYS = ("content", "styles", "style", "options", "output")


def read_job_file(path: str | os.PathLike[str], suffix: str = ".png") -> list[Job]:
    """A manifest of jobs: one JSON object a line, ``{"content": ..., "styles": [...] or "style": ...,
    "options": {...}, "output": ...}`` (``options`` and ``output`` optional; blank lines and lines
    starting with ``#`` skipped); or, for a ``.yaml``/``.yml`` file, the same mappings as a YAML list
    or as YAML documents (``---``). Relative image paths are relative to the file's folder.

    Raises:
        ConfigError: one line naming the file, the line and the key or option at fault.
    """
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"`jobs` {path}: cannot read it ({getattr(exc, 'strerror', None) or exc})") from None
    items = _yaml_items(path, text) if path.suffix.lower() in YAML_SUFFIXES else _json_items(path, text)
    jobs = [_job(path, item, lines, suffix) for item, lines in items]
    if not jobs:
        raise ConfigError(f"`jobs` {path}: lists no jobs")
    try:
        return check_unique(jobs)
    except ConfigError as exc:
        raise ConfigError(f"`jobs` {path}: {exc.template}") from None


def _json_items(path: Path, text: str) -> list[tuple[Any, dict[str, int]]]:
    """(item, {key: line}) for each JSON line (every key of a line is on that line)."""
    items = []
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        try:
            item = json.loads(line)
        except ValueError as exc:
            raise ConfigError(f"`jobs` {path} line {number}: not JSON ({exc.msg})") from None
        items.append((item, {"": number}))
    return items


def _yaml_items(path: Path, text: str) -> list[tuple[Any, dict[str, int]]]:
    """(item, {key: line}) for each mapping of a YAML list, or each YAML document; ``key`` is a top
    key or ``options.FIELD``, ``""`` the item itself (lines count from 1)."""
    try:
        import yaml
    except ImportError:
        raise ConfigError(YAML_HINT) from None
    try:
        documents = list(yaml.compose_all(text, Loader=yaml.SafeLoader))
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        at = f" line {mark.line + 1}" if mark is not None else ""
        raise ConfigError(f"`jobs` {path}{at}: not YAML ({getattr(exc, 'problem', None) or exc})") from None
    nodes = []
    for doc in documents:
        if isinstance(doc, yaml.SequenceNode):
            nodes += doc.value
        elif doc is not None:
            nodes.append(doc)
    items = []
    for node in nodes:
        lines = {"": node.start_mark.line + 1}
        if isinstance(node, yaml.MappingNode):
            for key, value in node.value:
                lines[str(key.value)] = key.start_mark.line + 1
                if key.value == "options" and isinstance(value, yaml.MappingNode):
                    lines.update({f"options.{k.value}".replace("-", "_"): k.start_mark.line + 1 for k, _ in value.value})
        try:
            item = yaml.SafeLoader("").construct_document(node)
        except yaml.YAMLError as exc:
            raise ConfigError(f"`jobs` {path} line {lines['']}: not YAML ({getattr(exc, 'problem', None) or exc})") from None
        items.append((item, lines))
    return items


def _job(path: Path, item: Any, lines: Mapping[str, int], suffix: str) -> Job:
    """One job from a parsed manifest item, checked: every error names the line (of the key at fault)."""

    def where(key: str = "") -> str:
        return f"`jobs` {path} line {lines.get(key, lines[''])}"

    if not isinstance(item, dict) or "content" not in item or not ({"styles", "style"} & set(item)):
        raise ConfigError(f"{where()}: needs \"content\" and \"styles\"")
    unknown = sorted(map(str, set(item) - set(KEYS)))
    if unknown:
        raise ConfigError(f"{where(unknown[0])}: unknown key {shown(unknown[0])} (a job has {', '.join(KEYS)})")
    if not isinstance(item["content"], str):
        raise ConfigError(f"{where('content')}: \"content\" must be a path")
    key = "styles" if "styles" in item else "style"
    styles = item[key]
    styles = [styles] if isinstance(styles, str) else styles
    if not isinstance(styles, list) or not styles or not all(isinstance(s, str) for s in styles):
        raise ConfigError(f"{where(key)}: \"{key}\" must be a path or a list of paths")
    options = item.get("options") or {}
    if not isinstance(options, dict):
        raise ConfigError(f"{where('options')}: \"options\" must be a mapping of settings")
    options = {str(k).replace("-", "_"): v for k, v in options.items()}
    unknown = sorted(set(options) - {f.name for f in dataclasses.fields(Config)})
    if unknown:
        raise ConfigError(f"{where('options.' + unknown[0])}: unknown option {shown(unknown[0])}")
    try:
        Config.for_mode("stylize", **options)
    except ConfigError as exc:
        field = re.search(r"`(\w+)`", exc.template)
        raise ConfigError(f"{where('options.' + field.group(1) if field else 'options')}: {exc.template}") from None
    content = str(path.parent / item["content"])
    styles = tuple(str(path.parent / s) for s in styles)
    output = item.get("output") or job_name(content, styles, options, suffix)
    if not isinstance(output, str) or Path(output).name != output:
        raise ConfigError(f"{where('output')}: \"output\" must be a file name (the batch writes into its own folder)")
    column = " ".join(["+".join(map(_stem, styles)), *(f"{k}={_value_text(v)}" for k, v in options.items())])
    return Job(content, styles, options, output, _stem(content), column)


def _same_job(a: Job, b: Job) -> bool:
    real = os.path.realpath
    return (real(a.content), [real(s) for s in a.styles], dict(a.options)) == (real(b.content), [real(s) for s in b.styles], dict(b.options))


def check_unique(jobs: Sequence[Job]) -> list[Job]:
    """Two jobs may not write the same file (two contents with the same name in different folders)."""
    seen: dict[str, Job] = {}
    for job in jobs:
        first = seen.get(job.output)
        if first is not None and _same_job(first, job):
            raise ConfigError(f"the job {job.output} is listed twice (the same content, styles and options); drop one")
        if first is not None:
            raise ConfigError(
                f"two jobs would write {job.output} ({seen[job.output].content} and {job.content}); rename one of the inputs"
            )
        seen[job.output] = job
    return list(jobs)
