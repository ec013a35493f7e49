"""Video: ffmpeg jobs run as subprocesses, inputs probed with PyAV, thumbnails, plans."""
