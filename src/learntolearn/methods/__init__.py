"""The algorithms, as the book displays them: each a training objective and its own
test-time adaptation (see :mod:`learntolearn.methods.protocol`). They know no configs."""
