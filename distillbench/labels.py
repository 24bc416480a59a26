"""How tables name what they compare: a method with the options its run changed (``d3hr[m=10]``, with a
models hash where runs of one label used different weights), a protocol with its version where several are
stored and the settings an evaluation changed (``rded v2[epochs=40]``), so that different things never share
a cell."""


def variant(method: str, options: dict, defaults: dict) -> str:
    """The method's column name: its name, plus the options that differ from the method's defaults (as its
    run's manifest recorded them), so that runs with different options are never averaged together."""
    changed = {k: v for k, v in options.items() if k not in defaults or defaults[k] != v}
    if not changed:
        return method
    shown = ", ".join(f"{k}={str(v).rstrip('/').rsplit('/', 1)[-1]}" for k, v in sorted(changed.items()))
    return f"{method}[{shown}]"


def with_variants(df):
    """``df`` with the method column replaced by :func:`variant` labels (when options are known).  Where
    runs of one label used different models (a retrained backbone or teacher), each label gets
    ``@`` and a short hash of its runs' model checksums, so that they are not averaged together either."""
    if "options" not in df:
        return df
    import pandas as pd

    from distillbench.checksum import json_digest
    labels = pd.Series([variant(m, o, d) for m, o, d in zip(df["method"], df["options"], df["option_defaults"])],
                       index=df.index)
    if "models" in df:
        models = df["models"].map(lambda m: json_digest(m)[:6])
        mixed = models.groupby(labels).transform("nunique") > 1
        labels = labels.where(~mixed, labels + "@" + models)
    return df.assign(method=labels).drop(columns=[c for c in ("options", "option_defaults", "models") if c in df])


def protocol_label(name: str, overrides: dict, version=None) -> str:
    """How a table names a protocol: its name, its version where needed, the settings overridden
    (``rded v2[epochs=40]``)."""
    shown = ",".join(f"{k}={v}" for k, v in sorted((overrides or {}).items()))
    return f"{name}{f' v{version}' if version is not None else ''}{f'[{shown}]' if shown else ''}"


def with_protocol_labels(df):
    """``df`` with a protocol's name suffixed by its version (``rded v1``) where records of several versions of
    it are present, so that a changed protocol never shares a row with its older records, and by the settings an
    evaluation overrode (``rded[epochs=40]``), so that another training never shares a cell."""
    versions = (df["protocol_version"] if "protocol_version" in df else df["protocol"].map(lambda _: 0))
    versions = versions.fillna(0).astype(int)
    mixed = versions.groupby(df["protocol"]).transform("nunique") > 1
    overrides = df["protocol_overrides"] if "protocol_overrides" in df else [{}] * len(df)
    labels = [protocol_label(name, over, version if several else None)
              for name, over, version, several in zip(df["protocol"], overrides, versions, mixed)]
    return df.assign(protocol=labels).drop(columns=["protocol_version"], errors="ignore")


def labelled(df):
    """``df`` with methods and protocols named as tables show them (see :func:`with_variants` and
    :func:`with_protocol_labels`)."""
    return with_variants(with_protocol_labels(df))
