"""One-time migration to the store's size limit for tensor files in git (``TENSOR_LIMIT`` in
``src/learntolearn/experiments/store.py``): every tensor file over it gets its local name.

Result folders and runs in progress stored before the limit hold their tensor files under the
committed names (``model.pt``, ``optimizer.pt``, ``in-progress/<key>.pt``). This renames each
one over the limit to its git-ignored local name (``model.local.pt``, ...) and rewrites the
folder's ``SHA256SUMS`` (the same checksums, the new name, the size on a ``#`` line), in the
committed store and the scratch store, for the few-shot runs and the learned optimizers; a
damaged folder, or a run being trained, is left alone. Keys and the other files do not change.
Then ``git status`` shows the committed names as deleted: commit that.

    .venv/bin/python scripts/local_tensors.py
"""

from __future__ import annotations

from learntolearn.experiments.store import TENSOR_LIMIT, mebibytes
from learntolearn.fewshot.store import ResultStore
from learntolearn.learned_optimizers.runs import FOLDER, OptimizerStore
from learntolearn.paths import results_dir


def main() -> int:
    for root in dict.fromkeys((results_dir(), results_dir(scratch=True))):
        for store in (ResultStore(root), OptimizerStore(root / FOLDER)):
            renamed = store.localise_tensors()
            print(f"{store.root}: {len(renamed)} file(s) over {mebibytes(TENSOR_LIMIT)} renamed")
            for path in renamed:
                print(f"  {path.relative_to(store.root)} ({mebibytes(path.stat().st_size)})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
