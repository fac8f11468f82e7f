"""Check a command line's Hydra overrides before any work: one line per mistake, with a hint.

Hydra reports composition errors itself, in several lines, with exit code 1, and a key added
with ``+`` (or ``++``) to a structured config is accepted and then silently dropped when the
config becomes its dataclass (``+engine.alpah=0.3`` would run with the default alpha).
``check_overrides`` composes the config once with Hydra's compose API before ``@hydra.main``
runs (so nothing is created on disk), and turns every mistake into one ``ConfigError``:

* an unparsable override (``engine=[a``),
* an unknown group option (``engine=epei``; ``did you mean epie?``, the options listed),
* an unknown key however it is spelled (``engine.alpah=``, ``+engine.alpah=``,
  ``++engine.alpah=``, ``+alpah=``; ``did you mean alpha?``, the fields listed),
* a value of the wrong type (``engine.alpha=abc``),
* a value out of range (the config dataclasses' ``__post_init__`` checks), via ``validate``.

Sweeps (``engine.alpha=0.1,0.3``) are checked with their first value; for a group
(``engine=epie,rpie``) every option is checked.
"""

from __future__ import annotations

import dataclasses
import difflib
import re
from collections.abc import Callable, Iterable, Sequence
from typing import Any

from ptyframe.errors import ConfigError, PtyframeError, find_ptyframe_error

__all__ = ["check_overrides", "did_you_mean", "group_options", "overrides_of"]

#: Command-line flags after which Hydra does something other than run (help, config dumps).
_INFO_FLAGS = {"-h", "--help", "--hydra-help", "-c", "--cfg", "--info", "--shell-completion"}
#: Flags that take a value (the next argument).
_VALUE_FLAGS = {"-cn", "--config-name", "-cp", "--config-path", "-cd", "--config-dir", "-p"}
_PREFIX = {"ADD": "+", "FORCE_ADD": "++", "DEL": "~"}


def did_you_mean(word: str, options: Iterable[str]) -> str:
    """Return ``" (did you mean X?)"`` for the option nearest ``word``, or ``""``."""
    close = difflib.get_close_matches(str(word), [str(o) for o in options], n=1, cutoff=0.6)
    return f" (did you mean {close[0]}?)" if close else ""


def overrides_of(argv: list[str]) -> list[str] | None:
    """Return the overrides in ``argv`` (flags dropped), or None if Hydra will not run a job."""
    out: list[str] = []
    skip = False
    for arg in argv:
        if skip:
            skip = False
            continue
        if arg in _INFO_FLAGS or arg.startswith("--cfg=") or arg.startswith("--info="):
            return None
        if arg in _VALUE_FLAGS:
            return None  # another primary config: leave it to Hydra
        if arg.startswith("-") and not arg.startswith(("--", "-m")):
            continue
        if arg.startswith("-"):
            continue  # -m, --multirun, --run ...
        out.append(arg)
    return out


#: ``config_of(kind, name)``: the config dataclass of the registered component, or None.
ConfigOf = Callable[[str, str], "type | None"]


def check_overrides(
    config_name: str,
    overrides: list[str],
    validate: Callable[[Any], None] | None = None,
    config_of: ConfigOf | None = None,
) -> Any:
    """Compose ``config_name`` with ``overrides``; raise one ``ConfigError`` on a mistake.

    ``validate(cfg)`` (the composed config without its ``hydra`` node) runs the dataclasses'
    own checks. ``config_of`` finds a registered component's config class, so a misspelt
    field of an entry a preset added (``callbacks=early_stop``) still gets ``did you mean``.
    Returns the composed config. The search path must be set up already.
    """
    from hydra import initialize
    from hydra.core.global_hydra import GlobalHydra

    with initialize(version_base="1.3", config_path=None):
        loader = GlobalHydra.instance().config_loader()

        def groups(name: str) -> list[str]:
            try:
                return list(loader.get_group_options(name))
            except Exception:  # not a group
                return []

        return _check(config_name, overrides, groups, validate, config_of)


def group_options(group: str) -> list[str]:
    """Return the options of config ``group`` of ``ptyframe reconstruct`` (search path set)."""
    from hydra import initialize
    from hydra.core.global_hydra import GlobalHydra

    with initialize(version_base="1.3", config_path=None):
        return sorted(GlobalHydra.instance().config_loader().get_group_options(group))


def _check(
    config_name: str,
    overrides: list[str],
    groups: Callable[[str], list[str]],
    validate: Callable[[Any], None] | None,
    config_of: ConfigOf | None = None,
) -> Any:
    from hydra import compose
    from hydra.core.override_parser.overrides_parser import OverridesParser
    from hydra.errors import HydraException
    from omegaconf import OmegaConf

    parser = OverridesParser.create()
    single: list[str] = []
    for text in overrides:
        try:
            (ov,) = parser.parse_overrides([text])
        except HydraException as exc:
            first = str(exc).splitlines()[0]
            raise ConfigError(
                f"cannot read the override {text!r} ({first}); write key=value, "
                "a,b,c for a sweep (with -m), and quote values with spaces"
            ) from None
        key = ov.get_key_element()
        prefix = _PREFIX.get(ov.type.name, "")
        if ov.is_sweep_override():
            values = list(ov.sweep_string_iterator())
            bare = key.split("@")[0]
            if "." not in bare and groups(bare):
                for v in values:
                    _check_option(bare, v, groups(bare))
            single.append(f"{prefix}{key}={values[0] if values else ''}")
        else:
            single.append(text)
    try:
        cfg = compose(config_name, overrides=single, return_hydra_config=True)
    except Exception as exc:  # every Hydra/OmegaConf error becomes one line
        raise _explain(exc, single, groups, config_of) from None
    _check_no_added_keys(cfg)
    body = OmegaConf.masked_copy(cfg, [str(k) for k in cfg if k != "hydra"])
    if validate is not None:
        from hydra.core.hydra_config import HydraConfig

        HydraConfig.instance().set_config(cfg)  # for ${hydra:...} interpolations in presets
        try:
            validate(body)
        except PtyframeError:
            raise
        except Exception as exc:  # OmegaConf wraps errors from __post_init__
            inner = find_ptyframe_error(exc)
            if inner is not None:
                raise inner from None
            if "hydra" in str(exc).lower():  # only known once Hydra runs the job
                return cfg
            raise ConfigError(f"invalid configuration: {str(exc).splitlines()[0]}") from None
    return cfg


#: Hint for a group whose missing option may be something that is not chosen there.
_GROUP_NOTES = {
    "callback": (
        "; the always-on callbacks (truth_metrics, guard, history, progress, checkpoint, "
        "signals, convergence, outputs, ...) are set by metrics.*, guard.*, output.*, "
        "progress*: `ptyframe plugins` lists them"
    ),
}


def _check_option(group: str, option: str, options: list[str]) -> None:
    if option not in options:
        raise ConfigError(
            f"{group}={option}: no such {group}{did_you_mean(option, options)}; "
            f"options: {', '.join(options)}{_GROUP_NOTES.get(group, '')}"
        )


_MISSING = re.compile(r"Could not find '([^']+)'")
_LOAD = re.compile(r"Could not load '([^']+)'")


def _explain(
    exc: BaseException,
    overrides: list[str],
    groups: Callable[[str], list[str]],
    config_of: ConfigOf | None = None,
):
    """Return a one-line ``ConfigError`` for a Hydra composition error ``exc``."""
    inner = find_ptyframe_error(exc)
    if inner is not None:
        return inner
    cause = exc.__cause__ or exc.__context__
    msg = str(exc)
    found = _MISSING.search(msg) or _LOAD.search(msg)
    if found and "/" in found.group(1):
        group, _, option = found.group(1).rpartition("/")
        options = groups(group)
        if options:
            return ConfigError(
                f"{group}={option}: no such {group}{did_you_mean(option, options)}; "
                f"options: {', '.join(options)}{_GROUP_NOTES.get(group, '')}"
            )
        return ConfigError(f"{group}={option}: no config group {group!r} has that option")
    full_key = str(getattr(cause, "full_key", "") or "")
    obj_type = getattr(cause, "object_type", None)
    cmsg = str(cause).splitlines()[0] if cause is not None else ""
    if "not in" in cmsg or "Could not override" in msg or "Could not append" in msg:
        key = full_key or _key_in(msg)
        node = getattr(cause, "parent_node", None)
        if not dataclasses.is_dataclass(obj_type):  # e.g. an entry a preset file added
            obj_type = _entry_type(key, node, config_of) or obj_type
        entries = list(node.keys()) if key.split(".")[0] in _DICT_GROUPS and node else []
        return _unknown_key(key, obj_type, [str(e) for e in entries])
    if full_key and cmsg:
        value = next((o.split("=", 1)[1] for o in overrides if _bare(o) == full_key), "")
        return ConfigError(f"{full_key}={value}: {cmsg}")
    return ConfigError(msg.splitlines()[0] if msg else type(exc).__name__)


def _bare(override: str) -> str:
    return override.split("=", 1)[0].lstrip("+~")


def _key_in(msg: str) -> str:
    m = re.search(r"override '([^']+)'", msg)
    return m.group(1) if m else "a key"


#: Dict-typed config groups whose entries are components named by their ``name`` field.
_DICT_GROUPS = {"callbacks": "callback", "regularizers": "regularizer"}


def _entry_type(key: str, node: Any, config_of: ConfigOf | None) -> type | None:
    """Return the config dataclass of the component holding ``key`` (``callbacks.K.field``).

    An entry that a preset file adds (``callbacks=early_stop``) is an untyped node: its
    ``name`` is looked up in the registry, so a misspelt field still gets ``did you mean``.
    """
    parts = key.split(".")
    if config_of is None or len(parts) != 3 or parts[0] not in _DICT_GROUPS or node is None:
        return None
    try:
        name = node.get("name")
    except Exception:  # not a mapping
        return None
    if not isinstance(name, str):
        return None
    return config_of(_DICT_GROUPS[parts[0]], name)


def _unknown_key(key: str, obj_type: Any, entries: Sequence[str] = ()) -> ConfigError:
    """Return the error for ``key`` that does not exist in the dataclass ``obj_type``.

    ``entries``: the keys a dict-typed group holds (``callbacks.erly_stop`` when
    ``callbacks.early_stop`` exists gets ``did you mean early_stop?``).
    """
    leaf = key.rsplit(".", 1)[-1]
    parent = key.rsplit(".", 1)[0] if "." in key else ""
    fields: list[str] = []
    where = parent or "the config"
    if isinstance(obj_type, type) and dataclasses.is_dataclass(obj_type):
        fields = [f.name for f in dataclasses.fields(obj_type) if f.name != "name"]
        where = f"{parent or 'the config'} ({obj_type.__name__})"
    hint = did_you_mean(leaf, fields)
    near = did_you_mean(leaf, entries)[2:-1]  # "did you mean X?" or ""
    near = f"{near} or " if near else ""
    if parent == "regularizers":
        hint = f" ({near}add one with +regularizer@regularizers.{leaf}=tv, l1 or reweighted_l1)"
    if parent == "callbacks":
        hint = (
            f" ({near}add one with +callback@callbacks.{leaf}=<name>; "
            "`ptyframe plugins` lists them)"
        )
    elif parent.startswith(("callbacks.", "regularizers.")) and not fields:
        hint = " (`ptyframe plugins` lists the fields of each component)"
    listed = f"; its fields: {', '.join(fields)}" if fields else ""
    return ConfigError(f"{key}: {where} has no field {leaf!r}{hint}{listed}")


def _check_no_added_keys(cfg: Any, path: str = "") -> None:
    """Raise if a structured node holds a key its dataclass does not define (``+key=``)."""
    from omegaconf import DictConfig, OmegaConf

    for key in cfg:
        if not path and key == "hydra":
            continue
        node = cfg._get_node(key)
        if isinstance(node, DictConfig):
            _check_no_added_keys(node, f"{path}{key}.")
    typ = OmegaConf.get_type(cfg)
    if typ is None or not dataclasses.is_dataclass(typ):
        return
    known = {f.name for f in dataclasses.fields(typ)}
    for key in cfg:
        if not path and key == "hydra":
            continue
        if key not in known:
            raise _unknown_key(f"{path}{key}", typ)
