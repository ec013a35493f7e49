"""How a result is made: admission, the original, the render, the result write.

`delivery` speaks HTTP and hands a `Job` (what to make, no HTTP) to `Production`, which runs
one task per result key for everyone who asks meanwhile, through the first producer that takes
the job: `ImageProducer` today (images, and files served as they are); video adds a producer
beside it (`Producer` in job.py is the seam). Below this layer, `transform` stays pure (bytes in,
bytes out), and `cache` and `origins` know nothing of requests.
"""
