"""One-time migrations to the engine's store: every stored result folder with its
``SHA256SUMS``, and the search's summaries in result folders.

Result folders written before the store checksummed every file recorded only the SHA-256 of
their tensor file (in ``metrics.json``). This writes ``SHA256SUMS`` (config, metrics,
provenance and tensors) for each such folder whose tensor file still matches that record, in
the committed store and the scratch store, for the few-shot runs and the learned optimizers;
a folder that fails the check is named and left alone. A search summary stored as
``search/<key>.json`` becomes the folder ``search/<key>/`` (config, metrics, provenance and
their checksums). Keys and contents do not change.

    .venv/bin/python scripts/add_checksums.py
"""

from __future__ import annotations

from learntolearn.fewshot.store import ResultStore
from learntolearn.learned_optimizers.runs import FOLDER, OptimizerStore
from learntolearn.paths import results_dir
from learntolearn.search.studies import FOLDER as SEARCH
from learntolearn.search.studies import SearchStore


def main() -> int:
    status = 0
    for root in dict.fromkeys((results_dir(), results_dir(scratch=True))):
        moved = SearchStore(root / SEARCH).migrate_flat_summaries()
        print(f"{root / SEARCH}: {len(moved)} summary file(s) moved into result folders")
        for store in (ResultStore(root), OptimizerStore(root / FOLDER)):
            added = store.add_checksums()
            _, damaged = store.scan()
            print(f"{store.root}: SHA256SUMS added to {len(added)} folder(s)")
            for path, why in damaged.items():
                print(f"  left alone: {path.name}: {why}")
                status = 1
    return status


if __name__ == "__main__":
    raise SystemExit(main())
