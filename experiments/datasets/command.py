"""``pgm-ladder data verify``: check every real data file against its sha256 (SPEC §5).

Prints one line per file (ok / missing / corrupt) and exits non-zero if any file is not
ok; a data directory that does not exist is one line and exit status 2. ``--data-dir``
overrides where the files are looked for (else ``../shared/data`` beside the checkout, else
``PGM_LADDER_DATA``); ``--cache-dir`` where verified checksums are kept. A file whose size
and modification time match a recorded checksum is not hashed again unless ``--full``.
"""
from __future__ import annotations

import sys

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
    verify.add_argument("--full", action="store_true",
                        help="hash every file again, even one whose size and modification time match "
                             "a recorded checksum (catches a file changed in place)")
    verify.set_defaults(func=run_verify)


def run_verify(args) -> int:
    try:
        root = data_dir(args.data_dir)
    except DataFileMissing as err:
        print(f"pgm-ladder data verify: error: {err}", file=sys.stderr)
        return 2
    if not root.is_dir():
        print(f"pgm-ladder data verify: error: data directory {root} does not exist (pass --data-dir "
              "or set PGM_LADDER_DATA to the folder holding mnist/, polyphonic/ and brodatz/; "
              "docs/datasets.md)", file=sys.stderr)
        return 2
    print(f"data directory: {root}" + (" (hashing every file: --full)" if args.full else ""))
    bad = 0
    names = [n for n in checksums.EXPECTED if n.startswith(args.only)]
    for name in names:
        try:
            verified_path(name, data=root, cache=args.cache_dir, full=args.full)
            status = "ok"
        except DataFileMissing:
            status, bad = "MISSING", bad + 1
        except DataFileCorrupt as err:
            status, bad = f"CORRUPT ({err})", bad + 1
        print(f"{status:8s} {name}")
    print(f"{len(names) - bad} of {len(names)} files verified")
    return 1 if bad else 0
