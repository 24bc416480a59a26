"""Published weights by the names researchers use, through the libraries' own caches.

- ``torchvision:NAME[.WEIGHTS]``: torchvision's weights API (``torchvision:resnet18`` is its default weights,
  ``torchvision:resnet18.IMAGENET1K_V1`` names them), file in torch's hub cache (``$TORCH_HOME``);
- ``timm:NAME``: timm's pretrained weights, file in the Hugging Face cache (``timm/NAME``);
- a Hub id ``ORG/NAME`` (``facebook/DiT-XL-2-256``): a repository snapshot in the Hugging Face cache
  (``$HF_HUB_CACHE``), as ``from_pretrained`` reads it.

Loading never downloads: what is not in its cache is refused with one line naming the command that fetches
it (``distillbench download NAME``, the opt-in).  Offline mode (``HF_HUB_OFFLINE``) is honoured by the
Hugging Face library itself.
"""
import os
from pathlib import Path
from urllib.parse import urlparse

from distillbench.errors import DistillbenchError, UsageError

PREFIXES = ("torchvision:", "timm:")


def is_published(name: str) -> bool:
    return name.startswith(PREFIXES)


def _torchvision_weights(name: str):
    import torchvision.models
    arch, _, which = name.removeprefix("torchvision:").partition(".")
    try:
        weights = torchvision.models.get_model_weights(arch)
    except (ValueError, KeyError):
        raise UsageError(f"'{name}': torchvision has no model '{arch}' with weights; see "
                         "torchvision.models.list_models()") from None
    if not which:
        return arch, weights.DEFAULT
    try:
        return arch, weights[which]
    except KeyError:
        raise UsageError(f"'{name}': torchvision's {arch} has no weights '{which}'; choose one of: "
                         f"{', '.join(w.name for w in weights)}") from None


def _torchvision_file(weights) -> Path:
    import torch.hub
    return Path(torch.hub.get_dir()) / "checkpoints" / os.path.basename(urlparse(weights.url).path)


def _timm_cfg(name: str):
    """timm's pretrained config of ``timm:NAME``, which names its Hugging Face repository."""
    import timm
    try:
        cfg = timm.models.get_pretrained_cfg(name.removeprefix("timm:"))
    except RuntimeError:
        cfg = None
    if cfg is None or not cfg.hf_hub_id:
        raise UsageError(f"'{name}': timm has no pretrained weights of that name on the Hugging Face Hub; see "
                         "timm.list_models(pretrained=True)")
    return cfg


def _timm_file(name: str) -> tuple[str, Path]:
    from huggingface_hub import try_to_load_from_cache
    model, cfg = name.removeprefix("timm:"), _timm_cfg(name)
    for filename in ("model.safetensors", "pytorch_model.bin"):
        found = try_to_load_from_cache(cfg.hf_hub_id, filename)
        if isinstance(found, str):
            return model, Path(found)
    raise _not_cached(name, f"the Hugging Face cache ({cfg.hf_hub_id})")


def _not_cached(name: str, where: str) -> UsageError:
    return UsageError(f"'{name}' is not in {where}; fetch it once with `distillbench download {name}` "
                      "(or copy the file there from a machine that has it)")


def load_model(name: str, num_classes: int):
    """(model in eval mode, description) of published weights ``torchvision:...`` or ``timm:...``."""
    import torch

    from distillbench.checksum import sha256_file
    if name.startswith("torchvision:"):
        import torchvision.models
        arch, weights = _torchvision_weights(name)
        path = _torchvision_file(weights)
        if not path.is_file():
            raise _not_cached(name, f"torch's hub cache ({path})")
        model = torchvision.models.get_model(arch, num_classes=len(weights.meta["categories"]))
        model.load_state_dict(torch.load(path, map_location="cpu", weights_only=True))
        accuracy = weights.meta["_metrics"]["ImageNet-1K"]["acc@1"] / 100
        normalization, classes = "imagenet", len(weights.meta["categories"])
        name = f"torchvision:{arch}.{weights.name}"
    else:
        import timm
        arch, path = _timm_file(name)
        model = timm.create_model(arch, pretrained=True, pretrained_cfg_overlay={"file": str(path)})
        accuracy, classes = None, model.num_classes
        normalization = {"mean": list(model.pretrained_cfg["mean"]), "std": list(model.pretrained_cfg["std"])}
    if classes != num_classes:
        raise UsageError(f"'{name}' predicts {classes} classes but the dataset has {num_classes}")
    return model.eval().requires_grad_(False), {"arch": name, "path": str(path), "sha256": sha256_file(path),
                                                "accuracy": accuracy, "normalization": normalization}


def hub_snapshot(repo_id: str) -> Path:
    """The cached snapshot folder of the Hub repository ``repo_id`` (never downloads)."""
    from huggingface_hub import snapshot_download
    from huggingface_hub.errors import LocalEntryNotFoundError
    try:
        return Path(snapshot_download(repo_id, local_files_only=True))
    except LocalEntryNotFoundError:
        raise _not_cached(repo_id, "the Hugging Face cache") from None
    except ValueError as exc:  # not a valid repository id
        raise UsageError(f"'{repo_id}' is neither a local folder nor a Hugging Face Hub id: {exc}") from None


def download(name: str) -> str:
    """Fetch ``name`` into its library's cache (the one step that uses the network); where it now is."""
    try:
        return _fetch(name)
    except UsageError:
        raise
    except Exception as exc:  # the network libraries raise many kinds, some with pages of text
        first = (str(exc).strip().splitlines() or [""])[0]
        raise DistillbenchError(f"cannot download '{name}' ({type(exc).__name__}: {first}); check the network "
                                "connection, or copy it into the cache from a machine that has it") from None


def _fetch(name: str) -> str:
    if name.startswith("torchvision:"):
        weights = _torchvision_weights(name)[1]
        weights.get_state_dict(progress=True)
        return str(_torchvision_file(weights))
    if name.startswith("timm:"):
        from huggingface_hub import hf_hub_download
        return hf_hub_download(_timm_cfg(name).hf_hub_id, "model.safetensors")
    from diffusers import DiffusionPipeline
    return str(DiffusionPipeline.download(name))  # the pipeline's files, not every checkpoint in the repository
