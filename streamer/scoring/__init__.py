"""Scoring: the model's signature becomes the input schema, JSON is parsed into it, the
pyfunc model scores it, and every row leaves as an output or a dead letter.

Driver side: :mod:`.model` (resolve, pin, download, ship, validate; the :class:`.model.Models`
protocol that one model and :mod:`.groups` share), :mod:`.schema`, :mod:`.follow` (new
versions of the model) and :mod:`.envs` (restored model environments).
Executor side: :mod:`.scorer` scores a :class:`.chunk.Chunk` of records (:mod:`.parse` with
the field rules of :mod:`.rules`, :mod:`.predictions`, :mod:`.records`), in the Kafka source's
tasks or in the pandas UDF of :mod:`.udf`; the per-worker :mod:`.cache` keeps the loaded
models, and :mod:`.envserver` serves one from its own environment.
"""
