"""Scoring: the model's signature becomes the input schema, JSON is parsed into it, the
pyfunc model scores it in a pandas UDF, and every row leaves as an output or a dead letter.

Driver side: :mod:`.model` (resolve, pin, download, ship, validate) and :mod:`.schema`.
Executor side: :mod:`.udf`, :mod:`.parse`, :mod:`.records` and the per-worker :mod:`.cache`.
"""
