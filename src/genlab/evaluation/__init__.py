"""Sample-quality evaluation: FID / IS / KID via torch-fidelity, with an offline domain classifier."""
