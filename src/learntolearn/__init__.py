"""learntolearn: the library behind the book *Learning to Learn*.

One task data model (:mod:`learntolearn.tasks`) flows through every algorithm
(:mod:`learntolearn.methods`); experiments are configs with stable keys
(:mod:`learntolearn.fewshot.config`) whose results live in a store
(:mod:`learntolearn.experiments.store`) and are produced by
:func:`learntolearn.fewshot.runs.run`. The layers, lowest first: core (``tasks``,
``objective``, ``io``, ``paths``), ``data`` and ``models``, ``methods``, ``analysis``,
``experiments``, ``reporting`` and the CLI; each imports only from its own layer or lower ones.
"""

__version__ = "0.1.0"
