"""Pure nn.Modules: generators, discriminators, classifiers. No training logic here."""
