"""Many nodes: what must reach every pixelport node, through Redis (`[cluster] redis_url`)."""
