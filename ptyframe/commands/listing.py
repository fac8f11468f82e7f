"""``ptyframe plugins``: every plugin, then every component with its provider, fields, presets."""

from __future__ import annotations

from typing import Any

from ptyframe import cli


def main(argv: list[str]) -> int:
    """List plugins, components, providers and config fields."""
    app = cli.current_app()
    cli.setup_hydra(app.registry, app.searchpaths)
    print_plugins(app.registry, app.infos)
    return 0


def _collaborators(comp: Any) -> str:
    """Return what ``compose.build_engine`` gives engine ``comp`` besides its config."""
    from ptyframe.compose import takes

    names = {
        "physics": "physics=",
        "loss": "loss=",
        "regularizers": "regularizers.*",
        "prior": "denoiser= (with engine.rho > 0)",
    }
    got = [names[p] for p in names if takes(comp, p)]
    return ", ".join(got) if got else "its config only"


def print_core_callbacks() -> None:
    """Print the always-on callbacks and the settings of each."""
    from ptyframe.callbacks.core import CORE

    print("  always on (in this order), with their settings:")
    for name, settings in CORE.items():
        print(f"  {name:18s} {settings}")


def print_plugins(registry: Any, infos: dict[str, Any]) -> None:
    """Print every plugin, then every component with its provider, fields and presets.

    Each kind's line gives the command line that selects it (``registry.CHOOSE``; a test runs
    every one), and the presets are the YAML options of its Hydra group that are not
    components themselves (``conf/engine/rpie_lowdose.yaml``, a plugin's ``dm``).
    """
    from ptyframe.overrides import group_options
    from ptyframe.registry import CHOOSE, KINDS, choose_hint

    print("plugins (entry-point group 'ptyframe'):")
    for info in infos.values():
        print(f"  {info.name:28s} {info.distribution} {info.version}  ({info.module})")
    for kind in registry.kinds():
        names = registry.names(kind)
        if not names:
            continue
        note = CHOOSE.get(kind, ("", "", ""))[2]
        print(f"\n{kind}  (choose with: {choose_hint(kind)}){note}")
        for name in names:
            comp = registry.get(kind, name)
            print(f"  {name:18s} {comp.doc}  [from {comp.provider}]")
            if kind == "engine":
                print(f"      built with: {_collaborators(comp)}")
            for fname, tname, default in comp.fields():
                print(f"      {fname}: {tname} = {default!r}")
        try:
            presets = [p for p in group_options(KINDS[kind]) if p not in names]
        except Exception:  # a kind without a Hydra group
            presets = []
        if presets:
            print(f"  presets ({KINDS[kind]}=<preset>): {', '.join(presets)}")
        if kind == "callback":
            print_core_callbacks()
    for group in ("experiment", "sweep", "callbacks"):
        try:
            options = group_options(group)
        except Exception:
            continue
        plus = "" if group == "callbacks" else "+"  # callbacks has a default (none)
        print(f"\n{group}  (choose with: ptyframe reconstruct {plus}{group}=<name>)")
        print(f"  {', '.join(options)}")
