"""Result and original caches, and the coalescing of identical in-flight work."""
