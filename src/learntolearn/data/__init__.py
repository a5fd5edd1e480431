"""Where the tasks come from: sinusoids, Omniglot and MNIST, each file verified on the way in
(:mod:`learntolearn.data.verified`)."""
