"""Flags that choose where the fits of ``run`` and ``curve`` train (issue 14), and
``--seeds``: one definition, shared by both commands.

Reading them imports nothing heavy: Ray is imported only when ``--executor ray`` (or
``auto`` with ``RAY_ADDRESS`` set) is chosen and the fits start.
"""

from __future__ import annotations

import argparse

from recsys_core.cli.common import seed_int
from recsys_core.errors import DataError


def add_executor_flags(p: argparse.ArgumentParser) -> None:
    """``--executor``, ``--ray-address``, ``--ray-cpus``, ``--ray-gpus``."""
    g = p.add_argument_group("where the fits run")
    g.add_argument(
        "--executor",
        choices=["local", "ray", "auto"],
        default="local",
        help="local (the default): in this process, one fit after another; ray: one Ray "
        "task per fit, on --ray-address or a Ray started on this machine (pip install "
        "'recsys-transfer-lab[ray]'); auto: ray when RAY_ADDRESS is set, else local",
    )
    g.add_argument(
        "--ray-address",
        help="the Ray cluster to use (e.g. ray://head:10001, or auto for one started with "
        "`ray start` on this machine); default $RAY_ADDRESS, else a new Ray started here",
    )
    g.add_argument(
        "--ray-cpus", type=float, default=1.0, help="CPUs each Ray task reserves (default 1)"
    )
    g.add_argument(
        "--ray-gpus",
        type=float,
        help="GPUs each Ray task reserves (default: 1 with --device cuda, or auto on a "
        "cluster with GPUs; else 0)",
    )


def executor_config(args: argparse.Namespace):
    """The :class:`~recsys_core.runs.executor.ExecutorConfig` the flags ask for."""
    from recsys_core.runs.executor import ExecutorConfig

    kind = args.executor
    if args.ray_address and kind == "local":
        raise DataError(
            "--ray-address was given with --executor local",
            hint="add --executor ray (or auto) to train on that cluster",
        )
    config = ExecutorConfig(
        kind=kind, address=args.ray_address, num_cpus=args.ray_cpus, num_gpus=args.ray_gpus
    )
    if config.resolved() == "ray":
        import importlib.util

        if importlib.util.find_spec("ray") is None:  # looked up, not imported
            raise DataError(
                "the ray executor needs Ray, which is not installed"
                + (" (auto chose it: RAY_ADDRESS is set)" if kind == "auto" else ""),
                hint="pip install 'recsys-transfer-lab[ray]', or use --executor local",
            )
    return config


def parse_seeds(text: str | None) -> tuple[int, ...] | None:
    """``"0,1,2"`` -> (0, 1, 2); None -> None. Each a seed every generator takes,
    no repeats, at most 100."""
    if text is None:
        return None
    parts = [s.strip() for s in text.split(",") if s.strip()]
    try:
        seeds = tuple(seed_int(s) for s in parts)
    except argparse.ArgumentTypeError as exc:
        raise DataError(
            f"--seeds: {exc}", hint="write seeds as whole numbers, e.g. 0,1,2"
        ) from None
    if not seeds:
        raise DataError("--seeds is empty", hint="write seeds as whole numbers, e.g. 0,1,2")
    if len(set(seeds)) != len(seeds):
        raise DataError(f"--seeds repeats a seed: {text}", hint="give each seed once")
    if len(seeds) > 100:
        raise DataError(f"--seeds gives {len(seeds)} seeds; at most 100")
    return seeds
