"""Flower apps over the emulated fleet: a virtual-time `Grid`, the app loaded from its
project folder, and the ClientApps of the nodes that report back run for real."""
