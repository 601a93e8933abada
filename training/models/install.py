"""Installing a model where the node loads it, without pulling it from under a running node."""

from __future__ import annotations

import json
import logging
import os
import shutil
from pathlib import Path

from edge_node.model import file_sha256, manifest_path

log = logging.getLogger(__name__)

RECIPE_SUFFIX = ".recipe.yaml"
"""Beside an installed model (`default.tflite` -> `default.recipe.yaml`): the recipe that made
it, when a recipe did (`kws-train default`)."""


def recipe_path(model: Path) -> Path:
    """Where the recipe of an installed model is kept."""
    return model.with_suffix(RECIPE_SUFFIX)


def install_model(model: Path, destination: Path) -> None:
    """Copy a model and its manifest to where the node loads it, and the Keras model it was
    exported from (when the run has one) beside it, stamped, so `kws-train finetune` can start
    from the installed model; and the recipe of a recipe run (RUN/recipe.yaml), so the model
    can be traced to the settings that made it.

    Each file is written beside its destination and renamed over it: a node that is running
    the old model has it memory-mapped, and rewriting that file in place would hand the node
    new bytes under its interpreter (SIGBUS when the file shrinks) instead of leaving it on
    the old inode until it reloads.
    """
    from training.models.finetune import stamp_path, weights_path

    destination.parent.mkdir(parents=True, exist_ok=True)
    keras = model.parent / "model.keras"
    recipe = model.parent.parent / "recipe.yaml"
    pairs = [(model, destination), (manifest_path(model), manifest_path(destination))]
    if keras.is_file():
        pairs.append((keras, weights_path(destination)))
    if recipe.is_file():
        pairs.append((recipe, recipe_path(destination)))
    _replace_files(pairs)
    stamp = stamp_path(destination)
    if keras.is_file():
        stamp.write_text(json.dumps({"model_sha256": file_sha256(destination)}, indent=1) + "\n")
    else:
        # weights of the model this one replaces would be taken for its own
        weights_path(destination).unlink(missing_ok=True)
        stamp.unlink(missing_ok=True)
    if not recipe.is_file():
        recipe_path(destination).unlink(missing_ok=True)
    log.info("installed %s as %s", model, destination)


def install_isolation(model: Path, folder: Path) -> Path:
    """Copy an isolation check's model and manifest into `folder` under the name the node
    looks for (`edge_node.isolation.DEFAULT_ISOLATION_MODEL`'s), replacing files as
    `install_model` does."""
    from edge_node.isolation import DEFAULT_ISOLATION_MODEL

    destination = folder / DEFAULT_ISOLATION_MODEL.name
    folder.mkdir(parents=True, exist_ok=True)
    _replace_files([(model, destination), (manifest_path(model), manifest_path(destination))])
    log.info("installed %s as %s", model, destination)
    return destination


def _replace_files(pairs: list[tuple[Path, Path]]) -> None:
    """Each source written beside its target and renamed over it (see `install_model`)."""
    for source, target in pairs:
        part = target.with_name(target.name + ".part")
        shutil.copyfile(source, part)
        os.replace(part, target)
