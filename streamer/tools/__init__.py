"""The tools a user runs beside the service, not the service itself.

``streamer demo``, ``train``, ``produce`` and ``compare`` live here, with what they share:
the synthetic events, the producer and the demo's live view. The service never imports
this package, so the tools' libraries (the ``train``, ``demo`` and ``plot`` extras) stay
out of the core install.
"""
