"""learntolearn: the library behind the book *Learning to Learn*.

One task data model (:mod:`learntolearn.tasks`) flows through every algorithm; experiments are
configs with stable keys (:mod:`learntolearn.config`) whose results live in a store
(:mod:`learntolearn.store`) and are produced by :func:`learntolearn.runner.run`.
"""

__version__ = "0.1.0"
