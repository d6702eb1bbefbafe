"""Sample-quality evaluation: FID / IS / KID via torch-fidelity, offline-capable."""
