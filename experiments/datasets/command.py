"""``pgm-ladder data verify``: check every real data file against its sha256 (SPEC §5).

Prints one line per file (ok / missing / corrupt) and exits non-zero if any file is not
ok. ``--data-dir`` overrides where the files are looked for (else ``../shared/data`` beside
the checkout, else ``PGM_LADDER_DATA``); ``--cache-dir`` where verified checksums are kept.
"""
from __future__ import annotations

from experiments.datasets import checksums
from experiments.datasets.paths import (DataFileCorrupt, DataFileMissing, add_cache_dir_argument,
                                        add_data_dir_argument, data_dir, verified_path)


def register_commands(subparsers) -> None:
    data = subparsers.add_parser("data", help="the papers' real data files")
    which = data.add_subparsers(dest="data_command", metavar="ACTION")
    which.required = True
    verify = which.add_parser("verify", help="verify every data file's sha256",
                              description=__doc__)
    add_data_dir_argument(verify)
    add_cache_dir_argument(verify)
    verify.add_argument("--only", default="", metavar="PREFIX",
                        help="only files whose path starts with PREFIX (e.g. mnist/)")
    verify.set_defaults(func=run_verify)


def run_verify(args) -> int:
    root = data_dir(args.data_dir)
    print(f"data directory: {root}")
    bad = 0
    names = [n for n in checksums.EXPECTED if n.startswith(args.only)]
    for name in names:
        try:
            verified_path(name, data=args.data_dir, cache=args.cache_dir)
            status = "ok"
        except DataFileMissing:
            status, bad = "MISSING", bad + 1
        except DataFileCorrupt as err:
            status, bad = f"CORRUPT ({err})", bad + 1
        print(f"{status:8s} {name}")
    print(f"{len(names) - bad} of {len(names)} files verified")
    return 1 if bad else 0
