"""Datasets: fetch to one on-disk format, then a LightningDataModule over it."""
