"""The Hugging Face Hub: a training run as a model repo (a bundle: the env's source, its
config, the best policy as safetensors, curves, a model card and the WebAssembly player,
every file's sha256 in a versioned manifest), pushed and pulled with huggingface_hub, and
checked file by file before anything in it is used. Needs the `hub` extra.

    twisterl.hub.push("runs/puzzle", "user/puzzle-ppo", space=True)
    agent = twisterl.load("hf://user/puzzle-ppo")      # a `Pretrained`
"""

from .api import Pretrained, Pulled, Pushed, build_bundle, check_run, load, pull, push, resolve_run, resolve_source
from .bundle import FORMAT_VERSION, MANIFEST, BundleError, verify_bundle
from .transport import HubError, HubRef, is_hub_ref, parse_ref

__all__ = ["BundleError", "FORMAT_VERSION", "HubError", "HubRef", "MANIFEST", "Pretrained", "Pulled", "Pushed",
           "build_bundle", "check_run", "is_hub_ref", "load", "parse_ref", "pull", "push", "resolve_run",
           "resolve_source", "verify_bundle"]
